"""Wires workflows into one `Runtime`: state store, engine, delivery auth, queue choice, enqueue; start/stop hooks.

`service_for(rt)` builds the pieces lazily on first use and keeps one per
runtime object. The state store is the runtime's (`runtime.state.handle.handle_for(rt)`:
`[state] backend`, sqlite by default). `start(rt, port=...)` is the server's hook once HTTP
listens: it binds the queue adapter to this instance (target URL, signer, log) and starts the
local queue's dispatcher; `stop(rt)` stops it and closes the store.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from runtime.adapters.base import AdapterContext, AdapterError, SecretValue
from runtime.state import Run, Store
from runtime.state.handle import handle_for
from runtime.tasks_auth import (DEFAULT_SKEW_SECONDS, AuthError, AuthUnavailableError, HmacVerifier, JwksCache, NoAuth,
                                OidcVerifier, sign)
from runtime.workflows.engine import Engine, Outcome
from runtime.logs import utc_now_text
from runtime.workflows.messages import DELIVERY_PATH, build_body, task_name_for

#: how long a resolved HMAC key is reused before asking the secrets adapter again
KEY_TTL_SECONDS = 60.0
#: deliveries that execute at once (twice the CPUs, at least 2). The others wait for a slot at most
#: ADMISSION_WAIT seconds, then go ahead anyway: a flood of short runs is served without 80 threads
#: fighting over the GIL and the store (+15-30% throughput measured by bench/tasks.py), while a
#: few long, I/O-bound runs never hold the rest back by more than that.
ADMISSION = max(2, 2 * (os.cpu_count() or 1))
ADMISSION_WAIT = 0.05


class UnknownWorkflowError(LookupError):
    pass


class EnqueueError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class QueueChoice:
    category: str
    key: str
    provider: str
    adapter: Any


def _section(settings: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = settings.get(name) if isinstance(settings, Mapping) else None
    return dict(value) if isinstance(value, Mapping) else {}


class WorkflowService:
    """Everything workflow-related one runtime needs; safe to share between request threads."""

    def __init__(self, rt: Any, *, jwks: JwksCache | None = None) -> None:
        self.rt = rt
        self.state = handle_for(rt)
        self.engine = Engine(rt, lambda: self.store)
        self._jwks = jwks
        self._lock = threading.Lock()
        self._verifier: Any = None
        self._key: tuple[bytes, float] | None = None
        self._embedded_queue: Any = None
        self._started: list[Any] = []
        self._http: tuple[Any, dict[str, Any]] | None = None
        #: deliveries executing at once; the others wait here, blocked, instead of contending
        self.admission = threading.BoundedSemaphore(ADMISSION)
        self.admission_wait = ADMISSION_WAIT

    @property
    def store(self) -> Store:
        """The state store (waits while a remote one is still connecting; raises StateError)."""
        return self.state.store()

    # -- settings -------------------------------------------------------------

    @property
    def http(self) -> dict[str, Any]:
        """`settings.http`, re-read when the runtime swaps its settings object (a reload)."""
        settings = self.rt.settings
        cached = self._http
        if cached is None or cached[0] is not settings:
            cached = self._http = (settings, _section(settings, "http"))
        return cached[1]

    @property
    def max_body_bytes(self) -> int:
        return int(self.http.get("max_body_bytes") or 1048576)

    @property
    def hmac_window(self) -> float:
        """How old the HMAC signature of a queue delivery may be (`[http] hmac_window_seconds`)."""
        return float(self.http.get("hmac_window_seconds") or DEFAULT_SKEW_SECONDS)

    @property
    def hmac_skew(self) -> float:
        """How far any signature's timestamp may be from this clock (`[http] hmac_skew_seconds`)."""
        return float(self.http.get("hmac_skew_seconds") or DEFAULT_SKEW_SECONDS)

    def hmac_key(self) -> bytes | None:
        """The signing key from `http.hmac_key` (a secret reference), cached for a minute."""
        cached = self._key
        if cached is not None and time.monotonic() - cached[1] < KEY_TTL_SECONDS:
            return cached[0]
        ref = self.http.get("hmac_key")
        if not ref:
            return None
        value = self.rt.resolve(ref)
        # empty or not UTF-8: an AdapterError naming no part of the value (answered 503, never logged)
        key = (value if isinstance(value, SecretValue) else SecretValue(str(value))).encoded()
        self._key = (key, time.monotonic())
        return key

    def verifier(self) -> Any:
        mode = self.http.get("tasks_auth") or "hmac"
        if mode == "none":
            return NoAuth()
        if mode == "oidc":
            with self._lock:
                if self._verifier is None:
                    jwks = self._jwks
                    if jwks is None and self.http.get("oidc_certs_url"):  # a settings key the schema may add
                        jwks = JwksCache(self.http["oidc_certs_url"])
                    self._verifier = OidcVerifier(audience=self.http.get("oidc_audience"),
                                                  service_account=self.http.get("oidc_service_account"),
                                                  jwks=jwks)
                return self._verifier
        try:
            key = self.hmac_key()
        except AdapterError as exc:
            raise AuthUnavailableError(f"cannot read the HMAC key: {exc}") from None
        if not key:
            raise AuthError("tasks_auth is hmac but http.hmac_key is not configured")
        verifier = self._verifier
        if isinstance(verifier, HmacVerifier) and verifier._key == key:
            return verifier
        with self._lock:
            if not isinstance(self._verifier, HmacVerifier) or self._verifier._key != key:
                # no replay cache: a replayed signature maps to the same run (its idempotency key), which
                # runs once and then answers its stored result (see runtime.workflows.endpoint)
                self._verifier = HmacVerifier(key, skew=self.hmac_skew, replay=None,
                                              queued_max_age=self.hmac_window)
            return self._verifier

    def signer(self) -> Callable[[bytes], dict[str, str]] | None:
        """Headers that authenticate a delivery we send (HMAC mode only; Cloud Tasks adds OIDC itself)."""
        if (self.http.get("tasks_auth") or "hmac") != "hmac" or not self.http.get("hmac_key"):
            return None

        def _sign(body: bytes) -> dict[str, str]:
            return {"X-Oneiric-Signature": sign(self.hmac_key() or b"", body)}

        return _sign

    # -- queue ----------------------------------------------------------------

    def queue_category(self, workflow: str | None = None) -> str:
        """The workflow entry's `metadata.scheduler.queue_category` (the more specific), else
        `workflows.options.queue_category`, else `queue`."""
        entry = self.engine.workflow(workflow) if workflow else None
        scheduler = (entry.metadata or {}).get("scheduler") if entry is not None else None
        if isinstance(scheduler, Mapping) and isinstance(scheduler.get("queue_category"), str):
            return scheduler["queue_category"]
        return (_section(self.rt.settings, "workflows").get("options") or {}).get("queue_category") or "queue"

    def queue(self, workflow: str | None = None) -> QueueChoice:
        """The queue category -> the adapter key equal to it or its longest dotted prefix -> that adapter."""
        category = self.queue_category(workflow)
        selections = {s.key: s for s in self.rt.profile.selections if s.domain == "adapter"}
        keys = set(selections) | {k for (d, k) in self.rt.adapters if d == "adapter"}
        parts = category.split(".")
        key = next((".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in keys), None)
        if key is None:
            return QueueChoice(category, "queue", "local", self._embedded())
        adapter = self.rt.adapters.get(("adapter", key))
        provider = selections[key].provider if key in selections else getattr(adapter, "name", "?")
        if adapter is None or not hasattr(adapter, "enqueue"):
            raise EnqueueError(f"queue_category {category!r} resolves to adapter {key!r} ({provider}),"
                               " which is not an active queue adapter")
        return QueueChoice(category, key, provider, adapter)

    def _embedded(self) -> Any:
        with self._lock:
            if self._embedded_queue is None:
                from runtime.adapters.queue_local import LocalQueue

                ctx = AdapterContext(project_dir=self.rt.project_dir, cache_dir=self.rt.cache_dir,
                                     profile=self.rt.profile.profile.name, log=getattr(self.rt, "log", None))
                q = LocalQueue({}, context=ctx)
                q.activate()
                self._embedded_queue = q
            return self._embedded_queue

    def bind_queue(self, port: int | None = None, workflow: str | None = None) -> QueueChoice:
        choice = self.queue(workflow)
        if hasattr(choice.adapter, "bind"):
            environ = getattr(self.rt, "environ", None) or {}
            port = (port or getattr(self.rt, "http_port", None) or environ.get("PORT")
                    or self.http.get("port") or 8080)
            choice.adapter.bind(target_url=f"http://127.0.0.1:{port}{DELIVERY_PATH}", signer=self.signer(),
                                log=getattr(self.rt, "log", None))
        return choice

    def delivery_warnings(self, choice: QueueChoice, workflow: str | None = None) -> list[str]:
        """Configurations whose deliveries this instance's endpoint would refuse, or that differ from
        what the workflow's `metadata.scheduler.provider` expects."""
        entry = self.engine.workflow(workflow) if workflow else None
        scheduler = (entry.metadata or {}).get("scheduler") if entry is not None else None
        expected = scheduler.get("provider") if isinstance(scheduler, Mapping) else None
        warnings = []
        if isinstance(expected, str) and expected != choice.provider:
            warnings.append(f"workflow {workflow} expects queue provider {expected!r} (metadata.scheduler) but"
                            f" {choice.category!r} resolves to {choice.provider!r} in this profile")
        return warnings + self._auth_warnings(choice)

    def _auth_warnings(self, choice: QueueChoice) -> list[str]:
        mode = self.http.get("tasks_auth") or "hmac"
        adapter = choice.adapter
        if mode == "oidc" and choice.provider == "cloudtasks" and not getattr(adapter, "service_account_email", None):
            return ["tasks_auth is oidc but the cloudtasks adapter has no service_account_email: "
                    "deliveries will carry no token and be refused (401)"]
        if mode == "oidc" and choice.provider == "local":
            return ["tasks_auth is oidc but the local queue cannot mint Google ID tokens: its deliveries "
                    "will be refused (401); use hmac locally"]
        if mode == "hmac" and not self.http.get("hmac_key"):
            return ["tasks_auth is hmac but http.hmac_key is not set: deliveries will be refused (401)"]
        if mode == "hmac" and choice.provider == "cloudtasks":
            return [f"tasks_auth is hmac with cloudtasks: the signature is made at enqueue, so retries more than"
                    f" {self.hmac_window:g} s later (http.hmac_window_seconds) are refused; use oidc with Cloud"
                    f" Tasks in production"]
        return []

    def enqueue(self, workflow: str, *, context: dict[str, Any] | None = None,
                run_id: str | None = None) -> dict[str, Any]:
        """Queue one run of `workflow`; a run id enqueued before from this cache dir is not queued again."""
        if self.engine.workflow(workflow) is None:
            raise UnknownWorkflowError(workflow)
        run_id = run_id or uuid.uuid4().hex
        task_name = task_name_for(run_id)
        prior = self.store.enqueued(task_name)
        if prior is not None:
            if prior["workflow"] != workflow:
                raise EnqueueError(f"run id {run_id!r} was already enqueued for workflow {prior['workflow']!r}")
            return {**prior, "deduplicated": True}
        choice = self.bind_queue(workflow=workflow)
        queued_at = utc_now_text(digits=6)
        metadata = {"queued_at": queued_at, "queue_category": choice.category, "queue_provider": choice.provider}
        body = build_body(workflow, run_id, context, metadata)
        signer = self.signer()
        # Cloud Tasks cannot sign per attempt: the signature made now rides on every retry (within the skew).
        headers = signer(body) if signer is not None and choice.provider != "local" else {}
        try:
            res = choice.adapter.enqueue(body=body, task_name=task_name, headers=headers)
        except AdapterError as exc:
            raise EnqueueError(str(exc)) from None
        record = {"workflow": workflow, "run_id": run_id, "task_name": task_name,
                  "queue_category": choice.category, "queue_provider": choice.provider, "queued_at": queued_at}
        self.store.record_enqueued(record)
        return {**record, "deduplicated": bool(res.get("deduplicated"))}

    # -- in-process runs (`workflow run`) ---------------------------------------

    def run_now(self, workflow: str, *, context: dict[str, Any] | None = None,
                run_id: str | None = None) -> tuple[Any, Outcome | None]:
        if self.engine.workflow(workflow) is None:
            raise UnknownWorkflowError(workflow)
        plan = self.engine.plan(workflow)
        claim = self.store.claim(workflow=workflow, run_id=run_id or uuid.uuid4().hex, task_name=None,
                                 context=context or {})
        if claim.outcome != "claimed":
            return claim, None
        return claim, self.engine.execute(claim.run, plan)

    def status(self, run_id: str) -> tuple[Run | None, list]:
        run = self.store.get(run_id) or self.store.find(task_name=run_id)
        return run, (self.store.nodes(run.run_id) if run else [])

    # -- lifecycle ----------------------------------------------------------------

    def start(self, port: int | None = None) -> None:
        """Bind every queue a workflow resolves to (the global category and each workflow's own)
        to this instance, and start the local ones' dispatchers."""
        seen: set[int] = set()
        for workflow in [None, *sorted(self.engine.workflows())]:
            try:
                choice = self.bind_queue(port, workflow)
            except EnqueueError as exc:
                log = getattr(self.rt, "log", None)
                if log is not None:
                    log("ERROR", "workflow queue unavailable", workflow=workflow, error=str(exc))
                continue
            if id(choice.adapter) in seen:
                continue
            seen.add(id(choice.adapter))
            if hasattr(choice.adapter, "start") and choice.provider == "local":
                choice.adapter.start()
                self._started.append(choice.adapter)

    def close(self) -> None:
        for adapter in self._started:
            adapter.stop()
        self._started = []
        if self._embedded_queue is not None:
            self._embedded_queue.close()
        self.engine.close()
        self.state.close()


_services: dict[int, tuple[Any, WorkflowService]] = {}
_services_lock = threading.Lock()


def service_for(rt: Any) -> WorkflowService:
    entry = _services.get(id(rt))
    if entry is not None and entry[0] is rt:
        return entry[1]
    with _services_lock:
        entry = _services.get(id(rt))
        if entry is None or entry[0] is not rt:
            entry = (rt, WorkflowService(rt))
            _services[id(rt)] = entry
        return entry[1]


def start(rt: Any, *, port: int | None = None) -> None:
    """Server hook, after HTTP listens: bind the queue to this instance and start the local dispatcher."""
    service_for(rt).start(port)


def abandon(rt: Any) -> None:
    """Server hook, when the shutdown grace expired with runs still executing: give their leases up
    (status `interrupted`), so another instance resumes them at once; their nodes are abandoned."""
    with _services_lock:
        entry = _services.get(id(rt))
    if entry is None or entry[0] is not rt or entry[1].state.status != "ready":
        return
    released = entry[1].store.release_all()
    if released:
        rt.log("WARNING", "shutdown grace expired: runs released for another instance to resume",
               runs=released)


def stop(rt: Any) -> None:
    """Server hook, at shutdown after in-flight work drained: stop the dispatcher, close the run store."""
    with _services_lock:
        entry = _services.pop(id(rt), None)
    if entry is not None and entry[0] is rt:
        entry[1].close()
