"""The task contract as a user's own package meets it: `fn(payload, context, inputs)`, the context's
attributes (the activated adapters by key, the run's identity), and a clear error for a task that does not
take the three arguments. Real CLI, real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.adapters.base import AdapterError
from runtime.workflows.context import Adapters, TaskContext, UnknownAdapterError, check_task_signature

ONEIRIC = str(Path(sys.executable).with_name("oneiric"))

MANIFEST = """\
source: mysvc
entries:
  - domain: adapter
    key: vector
    provider: memory
    factory: oneiric.demo.vector:MemoryVectorStore
    settings_schema: {type: object, properties: {dimensions: {type: integer, default: 4}}}
  - {domain: task, key: inspect, provider: mysvc, factory: "mysvc.tasks:inspect_context"}
  - {domain: task, key: store, provider: mysvc, factory: "mysvc.tasks:store"}
  - {domain: task, key: two, provider: mysvc, factory: "mysvc.tasks:two_arguments"}
  - {domain: task, key: missing, provider: mysvc, factory: "mysvc.tasks:missing_adapter"}
  - domain: workflow
    key: look
    provider: dag
    factory: runtime.workflows.engine:Engine
    dag:
      nodes:
        - {id: first, task: inspect}
        - {id: second, task: store, depends_on: [first]}
  - domain: workflow
    key: wrong
    provider: dag
    factory: runtime.workflows.engine:Engine
    dag: {nodes: [{id: only, task: two}]}
  - domain: workflow
    key: absent
    provider: dag
    factory: runtime.workflows.engine:Engine
    dag: {nodes: [{id: only, task: missing}]}
"""
SETTINGS = """\
[profile]
name = "default"

[adapters.selections]
vector = "memory"

[http]
tasks_auth = "hmac"
hmac_key = "secret://tasks-hmac-key"

[security]
factory_allowlist = ["mysvc", "oneiric.demo"]
"""
TASKS = '''\
def inspect_context(payload, context, inputs):
    return {"run_id": context.run_id, "workflow": context.workflow, "node": context.node, "task": context.task,
            "attempt": context.attempt, "adapters": sorted(context.adapters), "is_dict": isinstance(context, dict),
            "context": dict(context), "secrets": type(context.secrets).__name__}


def store(payload, context, inputs):
    vector = context.adapters["vector"]
    vector.upsert("k", [0.0] * vector.dimensions)
    return {"count": vector.count(), "provider": vector.name}


def _make():
    def inner(payload, context):
        return {}
    return inner


# assigned, not defined by `def`: the compiler cannot read its parameters, the runtime checks them on load
two_arguments = _make()
two_arguments.__module__ = __name__


def missing_adapter(payload, context, inputs):
    return context.adapters["queue-that-is-not-there"]
'''


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEIRIC_")}
    env["ONEIRIC_LOGGING__FORMAT"] = "json"
    return env


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ctx") / "app"
    (root / "deployment" / "manifests").mkdir(parents=True)
    (root / "deployment" / "manifests" / "app.yaml").write_text(MANIFEST)
    (root / "config").mkdir()
    (root / "config" / "default.toml").write_text(SETTINGS)
    (root / "mysvc").mkdir()
    (root / "mysvc" / "__init__.py").write_text("")
    (root / "mysvc" / "tasks.py").write_text(TASKS)
    done = subprocess.run([ONEIRIC, "compile"], cwd=root, env=_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return root


def _run(project: Path, workflow: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([ONEIRIC, "workflow", "run", workflow, "--json", *extra], cwd=project, env=_env(),
                          capture_output=True, text=True, timeout=60)


def test_tasks_reach_the_activated_adapters_by_key(project):
    out = _run(project, "look", "--context", '{"customer": "c-1"}', "--run-id", "run-ctx-1")
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout)["result"]
    assert result["first"] == {"run_id": "run-ctx-1", "workflow": "look", "node": "first", "task": "inspect",
                               "attempt": 1, "adapters": ["queue", "secrets", "vector"], "is_dict": True,
                               "context": {"customer": "c-1"}, "secrets": "EnvSecrets"}
    assert result["second"] == {"count": 1, "provider": "memory"}


def test_a_two_argument_task_fails_naming_the_task_and_the_contract(project):
    out = _run(project, "wrong")
    assert out.returncode == 1
    body = json.loads(out.stdout)
    assert body["status"] == "failed"
    assert "task 'two'" in body["error"] and "fn(payload, context, inputs)" in body["error"]
    assert "(payload, context)" in body["error"] and "TypeError" not in body["error"]


def test_an_adapter_the_profile_did_not_activate_is_named_with_the_active_ones(project):
    out = _run(project, "absent")
    assert out.returncode == 1
    error = json.loads(out.stdout)["error"]
    assert "no adapter 'queue-that-is-not-there' is active in this profile (active: queue, secrets, vector)" in error


def test_demo_load_writes_to_the_demo_vector_adapter(tmp_path):
    out = subprocess.run([ONEIRIC, "--demo", "workflow", "run", "ingest", "--context", '{"records": ["a", "b", "c"]}',
                          "--json"], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["result"]["load"] == {"loaded": 3, "target": "vector", "stored": 3}


def test_context_units():
    from oneiric.demo.vector import MemoryVectorStore

    store = MemoryVectorStore({"dimensions": 2})
    store.activate()
    adapters = Adapters({("adapter", "vector"): store, ("task", "x"): object()})
    assert list(adapters) == ["vector"] and adapters["vector"] is store
    with pytest.raises(UnknownAdapterError) as caught:
        adapters["queue"]
    assert str(caught.value).startswith("no adapter 'queue' is active in this profile (active: vector)")
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, AdapterError)
    ctx = TaskContext({"a": 1}, run_id="r", workflow="w", node="n", task="t", attempt=2, adapters=adapters)
    assert ctx == {"a": 1} and json.loads(json.dumps(ctx)) == {"a": 1} and ctx.attempt == 2

    check_task_signature("ok", "m:f", lambda payload, context, inputs: None)
    check_task_signature("ok", "m:f", lambda *args: None)
    check_task_signature("ok", "m:f", lambda payload, context, inputs, extra=None: None)
    for bad in (lambda payload, context: None, lambda payload, context, inputs, more: None,
                lambda *, payload, context, inputs: None):
        with pytest.raises(AdapterError, match="fn\\(payload, context, inputs\\)"):
            check_task_signature("bad", "m:f", bad)
