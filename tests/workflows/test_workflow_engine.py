"""DAG planning, the durable run store and the engine, against a fake Runtime and real SQLite files."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from runtime.model import Entry, RetryPolicy
from runtime.state import StateConfig, open_store
from runtime.workflows.dag import PlanError, build_plan
from runtime.workflows.engine import Engine, retry_delay
from tests.support.effects import effects
from tests.support.fake_runtime import FakeRuntime, node, workflow_entry


# ---------------------------------------------------------------- plan

def test_plan_orders_by_dependencies_and_manifest_order():
    e = workflow_entry("w", [node("c", "t", ("a", "b")), node("b", "t", ("a",)), node("a", "t"), node("d", "t")])
    plan = build_plan(e)
    assert [n.id for n in plan.order] == ["a", "d", "b", "c"]
    assert [n.id for n in plan.ready(done=[])] == ["a", "d"]
    assert [n.id for n in plan.ready(done=["a"], running=["d"])] == ["b"]
    assert [n.id for n in plan.ready(done=["a", "b", "d"])] == ["c"]


@pytest.mark.parametrize("nodes, message", [
    ([node("a", "t", ("b",)), node("b", "t", ("c",)), node("c", "t", ("a",))], "dependency cycle: a -> b -> c -> a"),
    ([node("a", "t", ("zz",))], "depends on 'zz', which is not a node"),
    ([node("a", "t"), node("a", "t")], "node id 'a' is used twice"),
    ([], "has no dag nodes"),
])
def test_plan_refuses_invalid_dags(nodes, message):
    with pytest.raises(PlanError, match=message.replace("(", r"\(")):
        build_plan(workflow_entry("w", nodes))


def test_plan_accepts_plain_json_nodes_from_a_stdlib_reader():
    entry = Entry(domain="workflow", key="w", provider="dag", factory="m:f",
                  dag={"nodes": [{"id": "b", "task": "t", "depends_on": ["a"], "retry_policy": {"attempts": 2}},
                                 {"id": "a", "task": "t"}]})
    plan = build_plan(entry)
    assert [n.id for n in plan.order] == ["a", "b"]
    assert plan.by_id["b"].retry_policy.attempts == 2


@pytest.mark.parametrize("timeout, outcome", [(None, 600.0), (2.5, 2.5), (0, "refused"), (86401, "refused")])
def test_a_nodes_timeout_from_plain_json_defaults_only_when_absent(timeout, outcome):
    """A remotely refreshed manifest is plain JSON the compiler never checked: 0 is refused, not read as unset."""
    raw = {"id": "a", "task": "t", **({} if timeout is None else {"timeout_seconds": timeout})}
    entry = Entry(domain="workflow", key="w", provider="dag", factory="m:f", dag={"nodes": [raw]})
    if outcome == "refused":
        with pytest.raises(PlanError, match=r"node 'a' timeout_seconds must be in \(0, 86400\]"):
            build_plan(entry)
    else:
        assert build_plan(entry).by_id["a"].timeout_seconds == outcome


def test_retry_delay_is_exponential_capped_and_jittered():
    p = RetryPolicy(attempts=9, base_delay=0.5, max_delay=3.0, jitter=0.5)
    assert [retry_delay(p, n, rng=lambda: 0.0) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert retry_delay(p, 1, rng=lambda: 1.0) == 0.75
    assert retry_delay(p, 3, rng=lambda: 1.0) == 3.0  # jitter never exceeds max_delay


# ---------------------------------------------------------------- run store (sqlite specifics; see tests/state)

def _store(cache_dir, **kwargs):
    return open_store(StateConfig({}), cache_dir=cache_dir, **kwargs)


def test_sqlite_store_is_wal(tmp_path):
    store = _store(tmp_path)
    assert sqlite3.connect(tmp_path / "workflow_runs.sqlite").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_store_reclaims_a_run_whose_owner_process_died(tmp_path):
    code = ("import sys; sys.path.insert(0, %r); from runtime.state import StateConfig, open_store;"
            "s = open_store(StateConfig({}), cache_dir=%r);"
            " print(s.claim(workflow='w', run_id='r', task_name=None, context={}).outcome)"
            % (os.getcwd(), str(tmp_path)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "claimed", out.stderr
    store = _store(tmp_path)
    run = store.get("r")
    assert run.status == "running"  # the process exited without finishing
    claim = store.claim(workflow="w", run_id="r", task_name=None, context={})
    assert (claim.outcome, claim.run.attempts) == ("claimed", 2)  # on one host: no need to wait for the lease
    store.close()


# ---------------------------------------------------------------- engine

def _engine(rt: FakeRuntime, sleeps: list[float] | None = None) -> Engine:
    store = _store(rt.cache_dir)
    return Engine(rt, store, sleep=(sleeps.append if sleeps is not None else time.sleep), rng=lambda: 0.0)


def _run(engine: Engine, workflow: str, context: dict, run_id: str = "run-1"):
    claim = engine.store.claim(workflow=workflow, run_id=run_id, task_name=None, context=context)
    assert claim.outcome == "claimed"
    return engine.execute(claim.run, engine.plan(workflow))


def test_engine_runs_a_chain_and_passes_outputs_downstream(tmp_path):
    rt = FakeRuntime(tmp_path)
    engine = _engine(rt)
    fx = tmp_path / "fx.jsonl"
    outcome = _run(engine, "ingest", {"records": ["a", "b"], "effects": str(fx)})
    assert outcome.status == "succeeded"
    assert outcome.result == {"extract": {"records": ["a", "b"], "count": 2}, "transform": {"records": ["A", "B"]},
                              "load": {"loaded": 2, "target": "vector"}}
    assert [e["task"] for e in effects(fx)] == ["extract", "transform", "load"]
    run = engine.store.get("run-1")
    assert (run.status, run.result) == ("succeeded", outcome.result)
    assert [(n.node_id, n.status, n.attempts) for n in engine.store.nodes("run-1")] == [
        ("extract", "succeeded", 1), ("transform", "succeeded", 1), ("load", "succeeded", 1)]


def test_engine_retries_within_policy_with_backoff(tmp_path):
    rt = FakeRuntime(tmp_path, workflows=[workflow_entry("w", [
        node("f", "flaky", (), {"fail_times": 2, "label": "f"}, attempts=3, base_delay=0.2, max_delay=5)])])
    sleeps: list[float] = []
    engine = _engine(rt, sleeps)
    fx = tmp_path / "fx.jsonl"
    outcome = _run(engine, "w", {"effects": str(fx)})
    assert outcome.status == "succeeded" and outcome.result["f"]["calls"] == 3
    assert sleeps == [0.2, 0.4]
    assert [(n.node_id, n.attempts) for n in engine.store.nodes("run-1")] == [("f", 3)]


def test_engine_failure_then_resume_skips_checkpointed_nodes(tmp_path):
    rt = FakeRuntime(tmp_path)
    engine = _engine(rt)
    fx = tmp_path / "fx.jsonl"
    first = _run(engine, "flaky", {"effects": str(fx), "records": ["x"]})
    assert first.status == "failed" and first.node == "flaky" and "planned failure 1" in first.error
    assert engine.store.get("run-1").status == "failed"
    second = _run(engine, "flaky", {})
    assert second.status == "failed" and "planned failure 2" in second.error
    third = _run(engine, "flaky", {})
    assert third.status == "succeeded"
    assert third.result["flaky"] == {"label": "flaky", "calls": 3, "upstream": ["extract"]}
    assert third.result["extract"] == {"records": ["x"], "count": 1}  # the checkpoint from the first delivery
    ran = [e["task"] for e in effects(fx)]
    assert ran.count("extract") == 1 and ran.count("load") == 1 and ran.count("flaky") == 3
    nodes = {n.node_id: n for n in engine.store.nodes("run-1")}
    assert nodes["flaky"].attempts == 3 and nodes["flaky"].status == "succeeded"
    assert engine.store.get("run-1").attempts == 3


def test_engine_runs_independent_nodes_concurrently(tmp_path):
    rt = FakeRuntime(tmp_path)
    engine = _engine(rt)
    outcome = _run(engine, "fanout", {"sleep_seconds": 0.4})
    assert outcome.status == "succeeded"
    a, b = outcome.result["a"], outcome.result["b"]
    assert a["started"] < b["finished"] and b["started"] < a["finished"]  # overlapping
    engine.close()


def test_engine_gate_stops_dispatch_and_leaves_the_run_resumable(tmp_path):
    rt = FakeRuntime(tmp_path)
    engine = _engine(rt)
    fx = tmp_path / "fx.jsonl"
    rt.gates[("task", "transform")] = "paused"
    outcome = _run(engine, "ingest", {"effects": str(fx)})
    assert (outcome.status, outcome.reason) == ("interrupted", "paused")
    assert engine.store.get("run-1").status == "interrupted"
    assert [e["task"] for e in effects(fx)] == ["extract"]
    del rt.gates[("task", "transform")]
    assert _run(engine, "ingest", {}).status == "succeeded"
    assert [e["task"] for e in effects(fx)] == ["extract", "transform", "load"]


def test_engine_refuses_factories_outside_the_allowlist_and_bad_outputs(tmp_path):
    rt = FakeRuntime(tmp_path, allowlist=("somewhere.else",))
    engine = _engine(rt)
    outcome = _run(engine, "ingest", {})
    assert outcome.status == "failed" and "outside the factory allowlist" in outcome.error
    rt2 = FakeRuntime(tmp_path / "b", workflows=[workflow_entry("w", [node("x", "set", attempts=3)])])
    engine2 = _engine(rt2)
    out2 = _run(engine2, "w", {})
    assert out2.status == "failed" and "not JSON-serialisable" in out2.error
    assert engine2.store.nodes("run-1")[0].attempts == 1  # no retry for an unencodable output


def test_engine_gives_every_call_fresh_arguments(tmp_path):
    rt = FakeRuntime(tmp_path, workflows=[workflow_entry("w", [
        node("a", "extract"), node("m1", "mutate", ("a",), {"k": 1}, attempts=1),
        node("m2", "mutate", ("a",), {"k": 1}), node("join", "load", ("m1", "m2"))])])
    engine = _engine(rt)
    outcome = _run(engine, "w", {"records": ["r"]})
    assert outcome.status == "succeeded"
    assert outcome.result["m1"] == outcome.result["m2"] == {"payload_seen": 1, "context_seen": 1}
    assert outcome.result["a"] == {"records": ["r"], "count": 1}  # inputs were copies
    assert engine.store.get("run-1").context == {"records": ["r"]}
    engine.close()


def test_engine_lets_an_admitted_run_finish_while_the_process_is_stopping(tmp_path):
    rt = FakeRuntime(tmp_path)
    engine = _engine(rt)
    rt.gates[("*", "*")] = "stopping"  # SIGTERM arrived after the delivery was admitted
    assert _run(engine, "ingest", {}).status == "succeeded"


def test_engine_follows_a_manifest_swap(tmp_path):
    from runtime.model import replace

    rt = FakeRuntime(tmp_path)
    engine = _engine(rt)
    assert engine.workflow("ingest") is not None and engine.workflow("later") is None
    extra = workflow_entry("later", [node("x", "noop")])
    rt.manifest = replace(rt.manifest, entries=rt.manifest.entries + (extra,))
    assert engine.workflow("later") is not None
    assert _run(engine, "later", {}).result == {"x": {"ok": True}}


def test_checkpoints_are_group_committed_within_the_interval(tmp_path):
    path = tmp_path / "workflow_runs.sqlite"
    store = _store(tmp_path, checkpoint_interval=0.05)
    store.claim(workflow="w", run_id="r", task_name=None, context={})
    store.record_node("r", "a", status="succeeded", attempts=1, output={"v": 1})
    store.record_node("r", "b", status="succeeded", attempts=1, output={"v": 2})
    assert store.completed_outputs("r") == {"a": {"v": 1}, "b": {"v": 2}}  # pending ones count already

    def committed() -> int:
        with sqlite3.connect(path) as other:  # what another process (or a restart) would see
            return other.execute("SELECT COUNT(*) FROM nodes WHERE run_id='r'").fetchone()[0]

    t0 = time.monotonic()
    while committed() < 2:
        assert time.monotonic() - t0 < 2, "checkpoints not committed by the flusher"
        time.sleep(0.01)
    store.record_node("r", "c", status="succeeded", attempts=1, output={"v": 3})
    store.finish("r", status="succeeded", result={})  # the run's end commits its own pending checkpoints
    assert committed() == 3
    store.close()
