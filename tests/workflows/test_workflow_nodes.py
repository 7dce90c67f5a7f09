"""Node limits: a per-attempt timeout and a per-run cap on parallel nodes (one run cannot hold another back)."""

from __future__ import annotations

import sys
import threading

from runtime.model import DagNode, Entry, RetryPolicy
from runtime.state import StateConfig, open_store
from runtime.workflows.engine import Engine

from tests.support.env import wait_until as wait_for
from tests.support.fake_runtime import FakeRuntime, workflow_entry
from tests.workflows import held_tasks


def _node(id: str, seconds: float, *, deps: tuple[str, ...] = (), timeout: float = 600.0, attempts: int = 1) -> DagNode:
    return DagNode(id=id, task="sleep", depends_on=deps, payload={"label": id, "seconds": seconds},
                   retry_policy=RetryPolicy(attempts=attempts, base_delay=0.0, max_delay=0.0), timeout_seconds=timeout)


def _engine(tmp_path, workflows) -> Engine:
    rt = FakeRuntime(tmp_path, workflows=workflows)
    return Engine(rt, open_store(StateConfig({}), cache_dir=rt.cache_dir))


def _run(engine: Engine, workflow: str, run_id: str, context: dict | None = None):
    claim = engine.store.claim(workflow=workflow, run_id=run_id, task_name=None, context=context or {})
    return engine.execute(claim.run, engine.plan(workflow))


def _held_engine(tmp_path, nodes: list[DagNode]) -> Engine:
    tasks = [Entry(domain="task", key=k, provider="test", factory=f"{held_tasks.__name__}:{k}") for k in ("held", "quick")]
    rt = FakeRuntime(tmp_path, workflows=[workflow_entry("w", nodes), *tasks],
                     allowlist=("oneiric.demo", held_tasks.__name__))
    return Engine(rt, open_store(StateConfig({}), cache_dir=rt.cache_dir))


def _held(id: str, *, deps: tuple[str, ...] = (), timeout: float = 0.3, attempts: int = 1,
          hold_attempts: int = 100, key: str = "") -> DagNode:
    return DagNode(id=id, task="held", depends_on=deps, payload={"hold_attempts": hold_attempts, "key": key},
                   retry_policy=RetryPolicy(attempts=attempts, base_delay=0.0, max_delay=0.0), timeout_seconds=timeout)


def _quick(id: str, deps: tuple[str, ...]) -> DagNode:
    return DagNode(id=id, task="quick", depends_on=deps)


def _parked(thread_id: int) -> bool:
    """The worker thread is back waiting for work (or gone): it can do nothing more for any run."""
    frame = sys._current_frames().get(thread_id)
    return frame is None or frame.f_code.co_name == "_work"


def _release_and_settle(run_id: str, abandoned: list[dict]) -> None:
    """Let the abandoned attempts' tasks return, and wait until their threads are idle again (or, the bug
    this guards against, one of them started another call)."""
    count = len(held_tasks.calls(run_id))
    held_tasks.release(run_id)
    returned = lambda: {(c["node"], c["attempt"]) for c in held_tasks.calls(run_id) if c["returned"]}  # noqa: E731
    wait_for(lambda: {(c["node"], c["attempt"]) for c in abandoned} <= returned(), 30)
    wait_for(lambda: all(_parked(c["thread"]) for c in abandoned) or len(held_tasks.calls(run_id)) > count, 30)


def test_an_attempt_past_its_timeout_fails_and_is_retried_then_the_run_fails(tmp_path):
    engine = _held_engine(tmp_path, [_held("hang", timeout=0.2, attempts=2), _quick("next", ("hang",))])
    outcome = _run(engine, "w", "r-fail")
    assert outcome.status == "failed" and "timeout_seconds = 0.2" in outcome.error and "2 attempt(s)" in outcome.error
    calls = held_tasks.calls("r-fail")
    assert [(c["node"], c["attempt"], c["returned"]) for c in calls] == [("hang", 1, False), ("hang", 2, False)]
    node = engine.store.nodes("r-fail")[0]
    assert (node.status, node.attempts) == ("failed", 2)
    before = (engine.store.get("r-fail"), engine.store.nodes("r-fail"))
    _release_and_settle("r-fail", calls)
    # the abandoned attempts returned late: no next node started, nothing of theirs was written
    assert [c["node"] for c in held_tasks.calls("r-fail")] == ["hang", "hang"]
    assert (engine.store.get("r-fail"), engine.store.nodes("r-fail")) == before


def test_an_abandoned_worker_never_starts_the_next_node_when_a_retry_took_over(tmp_path):
    nodes = [_quick("first", ()), _held("slow", deps=("first",), attempts=2, hold_attempts=1),
             _held("next", deps=("slow",), timeout=60, key="next"), _quick("last", ("next",))]
    engine = _held_engine(tmp_path, nodes)
    result: dict[str, object] = {}
    runner = threading.Thread(target=lambda: result.setdefault("outcome", _run(engine, "w", "r-retry")))
    runner.start()
    # the retry of `slow` succeeded and `next` is running, while the abandoned first attempt is still held
    wait_for(lambda: ("next", 1) in [(c["node"], c["attempt"]) for c in held_tasks.calls("r-retry")], 30)
    abandoned = [c for c in held_tasks.calls("r-retry") if (c["node"], c["attempt"]) == ("slow", 1)]
    assert len(abandoned) == 1 and not abandoned[0]["returned"]
    _release_and_settle("r-retry", abandoned)  # the abandoned attempt returns now, mid-run
    held_tasks.release("r-retry", "next")
    runner.join(30)
    outcome = result["outcome"]
    assert outcome.status == "succeeded" and outcome.result["slow"] == {"node": "slow", "attempt": 2}
    calls = held_tasks.calls("r-retry")
    # it started no node: each ran once, the retry and every later node on another thread
    assert [(c["node"], c["attempt"]) for c in calls] == [("first", 1), ("slow", 1), ("slow", 2), ("next", 1),
                                                          ("last", 1)]
    assert all(c["thread"] != abandoned[0]["thread"] for c in calls[2:])
    assert {n.node_id: (n.status, n.attempts) for n in engine.store.nodes("r-retry")} == {
        "first": ("succeeded", 1), "slow": ("succeeded", 2), "next": ("succeeded", 1), "last": ("succeeded", 1)}


def test_parallel_nodes_past_their_timeout_fail_the_run(tmp_path):
    engine = _held_engine(tmp_path, [_held("a", timeout=0.2), _held("b", timeout=0.2), _quick("join", ("a", "b"))])
    outcome = _run(engine, "w", "r-par")
    assert outcome.status == "failed" and "timeout_seconds = 0.2" in outcome.error
    calls = held_tasks.calls("r-par")
    assert sorted(c["node"] for c in calls) == ["a", "b"] and not any(c["returned"] for c in calls)
    _release_and_settle("r-par", calls)
    assert sorted(c["node"] for c in held_tasks.calls("r-par")) == ["a", "b"]  # join never ran
    assert engine.store.get("r-par").status == "failed"


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
