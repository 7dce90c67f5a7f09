"""A fake `Runtime` with the attributes of docs/runtime-interfaces.md that workflows code against, knobs
for tests, and helpers to build manifest entries."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any, Iterator

from runtime.adapters.base import AdapterContext, SecretNotFoundError, SecretValue, SecretsAdapter
from runtime.model import (Dag, DagNode, Entry, ManifestArtifact, ManifestLink, Profile, ProfileArtifact,
                           RetryPolicy, Selection, Toggles)
from tests.support import fixture_tasks

HMAC_KEY = "test-hmac-key-0123456789"
#: the fixture tasks' module, allowlisted by name
FIXTURE_TASKS = fixture_tasks.__name__


def node(id: str, task: str, deps: tuple[str, ...] = (), payload: dict | None = None, attempts: int = 1,
         base_delay: float = 0.0, max_delay: float = 0.0, jitter: float = 0.0) -> DagNode:
    return DagNode(id=id, task=task, depends_on=tuple(deps), payload=payload or {},
                   retry_policy=RetryPolicy(attempts=attempts, base_delay=base_delay, max_delay=max_delay,
                                            jitter=jitter))


def workflow_entry(key: str, nodes: list[DagNode]) -> Entry:
    return Entry(domain="workflow", key=key, provider="dag", factory="oneiric.demo.tasks:load",
                 dag=Dag(nodes=tuple(nodes)))


#: task key -> attr in oneiric.demo.tasks
DEMO_TASKS = {"extract": "extract", "transform": "transform", "load": "load", "flaky": "flaky", "noop": "noop",
              "sleep": "sleep"}


def standard_workflows() -> list[Entry]:
    return [
        workflow_entry("ingest", [node("extract", "extract"), node("transform", "transform", ("extract",)),
                                  node("load", "load", ("transform",), {"target": "vector"})]),
        workflow_entry("flaky", [node("extract", "extract"),
                                 node("flaky", "flaky", ("extract",), {"fail_times": 2, "label": "flaky"}),
                                 node("load", "load", ("flaky",))]),
        workflow_entry("fanout", [node("a", "sleep", (), {"label": "a"}), node("b", "sleep", (), {"label": "b"}),
                                  node("join", "load", ("a", "b"))]),
        workflow_entry("slow", [node("nap", "sleep", (), {"label": "nap"})]),
        workflow_entry("noop3", [node("n1", "noop"), node("n2", "noop", ("n1",)), node("n3", "noop", ("n2",))]),
        workflow_entry("picky", [node("extract", "extract"), node("check", "picky", ("extract",), attempts=3)]),
    ]


class FakeSecrets(SecretsAdapter):
    name = "fake"

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__({})
        self.values = values

    def get(self, name: str, version: str = "latest") -> SecretValue:
        if name not in self.values:
            raise SecretNotFoundError(f"secret {name} not found")
        return SecretValue(self.values[name])


class FakeRuntime:
    """The Runtime attributes workflows code against, with knobs for tests."""

    def __init__(self, tmp: Path, *, workflows: list[Entry] | None = None, http: dict | None = None,
                 queue: tuple[str, Any] | None = None, queue_category: str = "queue",
                 allowlist: tuple[str, ...] = ("oneiric.demo", FIXTURE_TASKS)) -> None:
        entries = list(workflows if workflows is not None else standard_workflows())
        factories = {k: f"oneiric.demo.tasks:{v}" for k, v in DEMO_TASKS.items()}
        factories.update({"set": f"{FIXTURE_TASKS}:returns_a_set", "mutate": f"{FIXTURE_TASKS}:mutates_its_arguments",
                          "picky": f"{FIXTURE_TASKS}:rejects_without_id"})
        entries += [Entry(domain="task", key=k, provider="demo", factory=f) for k, f in factories.items()]
        selections = [Selection("task", k, "demo", f, {}, "builtin", "test") for k, f in factories.items()]
        selections += [Selection("workflow", e.key, "dag", e.factory, {}, "builtin", "test")
                       for e in entries if e.domain == "workflow"]
        self.adapters: dict[tuple[str, str], Any] = {}
        if queue is not None:
            provider, adapter = queue
            selections.append(Selection("adapter", "queue", provider, "x:y", {}, "builtin", "test"))
            self.adapters[("adapter", "queue")] = adapter
        self.manifest = ManifestArtifact("oneiric.manifest/1", "0", ("test",), (), tuple(entries), "sha256:0")
        self.profile = ProfileArtifact("oneiric.profile/1", "0",
                                       Profile("test", "default", ("default",), Toggles(True, False, False, True)),
                                       (), {}, {}, tuple(selections), (), (), ManifestLink("m.json", "sha256:0"))
        http_settings = {"tasks_auth": "hmac", "hmac_key": "secret://tasks-hmac-key", "max_body_bytes": 4096,
                         "oidc_audience": None, "oidc_service_account": None, "port": 8080}
        http_settings.update(http or {})
        self.settings: dict[str, Any] = {"http": http_settings,
                                         "workflows": {"options": {"queue_category": queue_category}},
                                         "security": {"factory_allowlist": list(allowlist)}}
        self.project_dir = tmp
        self.cache_dir = tmp / ".oneiric_cache"
        self.secrets = FakeSecrets({"tasks-hmac-key": HMAC_KEY})
        self.activity = None
        self.environ: dict[str, str] = {}
        self.lifecycle = "accepting"
        self.logs: list[dict[str, Any]] = []
        #: (domain, key) -> reason; ("*", "*") gates everything
        self.gates: dict[tuple[str, str], str] = {}
        self.inflight_peak = 0
        self._inflight = 0
        self._lock = threading.Lock()

    def log(self, severity: str, message: str, **fields: Any) -> None:
        with self._lock:
            self.logs.append({"severity": severity, "message": message, **fields})

    def resolve(self, value: Any) -> Any:
        if isinstance(value, str) and value.startswith("secret://"):
            name, _, version = value[len("secret://"):].partition("@")
            return self.secrets.get(name, version or "latest")
        return value

    def gate(self, domain: str, key: str) -> str | None:
        return self.gates.get((domain, key)) or self.gates.get(("*", "*"))

    @contextlib.contextmanager
    def inflight(self) -> Iterator[None]:
        with self._lock:
            self._inflight += 1
            self.inflight_peak = max(self.inflight_peak, self._inflight)
        try:
            yield
        finally:
            with self._lock:
                self._inflight -= 1

    def adapter_context(self) -> AdapterContext:
        return AdapterContext(project_dir=self.project_dir, cache_dir=self.cache_dir, profile="test", log=self.log)

    def deliveries(self) -> list[dict[str, Any]]:
        return [r for r in self.logs if r["message"] == "workflow delivery"]
