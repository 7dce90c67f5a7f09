"""Node limits: a per-attempt timeout and a per-run cap on parallel nodes (one run cannot hold another back)."""

from __future__ import annotations

import threading

from runtime.model import DagNode, RetryPolicy
from runtime.state import StateConfig, open_store
from runtime.workflows.engine import Engine

from tests.support.effects import effects
from tests.support.env import wait_until as wait_for
from tests.support.fake_runtime import FakeRuntime, workflow_entry


def _node(id: str, seconds: float, *, deps: tuple[str, ...] = (), timeout: float = 600.0, attempts: int = 1) -> DagNode:
    return DagNode(id=id, task="sleep", depends_on=deps, payload={"label": id, "seconds": seconds},
                   retry_policy=RetryPolicy(attempts=attempts, base_delay=0.0, max_delay=0.0), timeout_seconds=timeout)


def _engine(tmp_path, workflows) -> Engine:
    rt = FakeRuntime(tmp_path, workflows=workflows)
    return Engine(rt, open_store(StateConfig({}), cache_dir=rt.cache_dir))


def _run(engine: Engine, workflow: str, run_id: str, context: dict | None = None):
    claim = engine.store.claim(workflow=workflow, run_id=run_id, task_name=None, context=context or {})
    return engine.execute(claim.run, engine.plan(workflow))


def test_an_attempt_past_its_timeout_fails_and_is_retried_then_the_run_fails(tmp_path):
    engine = _engine(tmp_path, [workflow_entry("stuck", [_node("hang", 1.0, timeout=0.2, attempts=2)])])
    fx = tmp_path / "fx.jsonl"
    outcome = _run(engine, "stuck", "r1", {"effects": str(fx)})
    assert outcome.status == "failed" and "timeout_seconds = 0.2" in outcome.error and "2 attempt(s)" in outcome.error
    assert effects(fx) == []  # both attempts were abandoned before their task returned
    node = engine.store.nodes("r1")[0]
    assert (node.status, node.attempts) == ("failed", 2)


def test_one_run_cannot_hold_another_runs_nodes_back(tmp_path):
    wide = [_node(f"w{i}", 1.0) for i in range(6)]
    small = [_node("s1", 0.05), _node("s2", 0.05)]
    engine = _engine(tmp_path, [workflow_entry("wide", wide), workflow_entry("small", small)])
    results: dict[str, object] = {}
    first = threading.Thread(target=lambda: results.setdefault("wide", _run(engine, "wide", "r-wide")))
    first.start()
    wait_for(lambda: engine.store.get("r-wide") is not None)
    results["small"] = _run(engine, "small", "r-small")
    first.join(30)
    wide_out, small_out = results["wide"].result, results["small"].result
    assert results["small"].status == "succeeded" and results["wide"].status == "succeeded"
    # the small run ended while the wide run's first nodes were still sleeping
    assert max(v["finished"] for v in small_out.values()) < min(v["finished"] for v in wide_out.values())
    # and the wide run never had more than 4 nodes running at once
    spans = sorted((v["started"], v["finished"]) for v in wide_out.values())
    overlap = max(sum(1 for s, f in spans if s <= t < f) for t, _ in spans)
    assert overlap <= 4
