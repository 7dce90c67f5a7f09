"""Two `orchestrate` processes (two Cloud Run instances) on one real PostgreSQL server: a run executes
once whichever instance gets which delivery, a dead instance's run is resumed elsewhere after its
lease, and a node longer than the lease keeps its run."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest

from runtime.tasks_auth import sign
from tests.support.cli import run_cli
from tests.support.env import wait_until

from .project import HMAC_KEY, POSTGRES, effects, env_for, make_project, pg_rows, post, start



@pytest.fixture
def two(tmp_path, pg_dsn):
    """(instance A, instance B, dsn) on one database, lease 3 s."""
    root = make_project(tmp_path / "p", POSTGRES.format(lease=3))
    env = env_for(root, pg_dsn)
    migrated = run_cli(*["state", "migrate"], cwd=root, env=env, timeout=60)  # as an operator before a deploy
    assert migrated.returncode == 0, migrated.stderr
    a = start(root, env)
    b = start(root, env)
    try:
        yield a, b, pg_dsn
    finally:
        for inst in (a, b):
            inst.close()


def _concurrently(calls):
    out = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i, fn):
        barrier.wait()
        out[i] = fn()

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def test_the_same_delivery_to_both_instances_at_once_executes_once(two, tmp_path):
    a, b, dsn = two
    fx = tmp_path / "fx.jsonl"
    msg = {"workflow": "slow3", "run_id": "both-1", "context": {"sleep_seconds": 0.3, "effects": str(fx)}}
    raw = json.dumps(msg).encode()
    sig = sign(HMAC_KEY.encode(), raw)  # one enqueue, delivered twice (as Cloud Tasks may)
    task = {"X-CloudTasks-TaskName": "both-1-task"}
    replies = _concurrently([lambda: post(a.url, raw=raw, signature=sig, headers=task),
                             lambda: post(b.url, raw=raw, signature=sig, headers=task)])
    codes = sorted(code for code, _ in replies)
    assert codes == [200, 409], replies
    busy = next(body for code, body in replies if code == 409)
    assert busy["error"] == "run_in_progress"
    # the queue retries the 409: the stored result, from either instance
    for inst in (a, b):
        code, body = post(inst.url, raw=raw, signature=sig, headers=task)
        assert (code, body.get("deduplicated"), body.get("attempts")) == (200, True, 1), body
    assert [e["label"] for e in effects(fx)] == ["a", "b", "c"]
    assert pg_rows(dsn, "SELECT status, attempts, generation FROM runs") == [("succeeded", 1, 1)]


def test_a_captured_signature_replayed_at_both_instances_runs_once(two, tmp_path):
    a, b, dsn = two
    fx = tmp_path / "fx.jsonl"
    raw = json.dumps({"workflow": "ingest", "context": {"records": ["x"], "effects": str(fx)}}).encode()
    sig = sign(HMAC_KEY.encode(), raw)
    replies = _concurrently([lambda i=i: post((a, b)[i % 2].url, raw=raw, signature=sig) for i in range(10)])
    assert {code for code, _ in replies} <= {200, 409}, replies
    retried = [post(a.url, raw=raw, signature=sig) if code == 409 else (code, body) for code, body in replies]
    assert [code for code, _ in retried] == [200] * 10
    assert len({body["run_id"] for _, body in retried}) == 1
    assert sorted(e["task"] for e in effects(fx)) == ["extract", "load", "transform"]  # 3 effects, not 30
    assert pg_rows(dsn, "SELECT COUNT(*) FROM runs") == [(1,)]


def test_kill9_of_one_instance_mid_run_the_other_resumes_after_the_lease(two, tmp_path):
    a, b, dsn = two
    fx = tmp_path / "fx.jsonl"
    msg = {"workflow": "slow3", "run_id": "kill-1", "context": {"sleep_seconds": 1.0, "effects": str(fx)}}
    raw = json.dumps(msg).encode()
    sig = sign(HMAC_KEY.encode(), raw)
    task = {"X-CloudTasks-TaskName": "kill-1-task"}
    sender = threading.Thread(target=post, args=(a.url,), kwargs={"raw": raw, "signature": sig, "headers": task,
                                                                   "timeout": 20})
    sender.start()
    wait_until(lambda: pg_rows(dsn, "SELECT node_id FROM nodes WHERE run_id='kill-1' AND status='succeeded'")
             == [("a",)])
    a.proc.send_signal(signal.SIGKILL)  # mid-node b
    a.proc.wait(5)
    killed_at = time.monotonic()
    sender.join(20)
    code, body = post(b.url, raw=raw, signature=sig, headers=task)
    assert (code, body["error"]) == (409, "run_in_progress")  # the dead owner's lease still runs
    reply = wait_until(lambda: (lambda r: r if r[0] == 200 else None)(post(b.url, raw=raw, signature=sig,
                                                                          headers=task)), timeout=20, interval=0.5)
    assert time.monotonic() - killed_at >= 2.0  # not before the 3 s lease (renewed up to 1 s before the kill)
    assert reply[1]["attempts"] == 2 and set(reply[1]["result"]) == {"a", "b", "c"}
    labels = [e["label"] for e in effects(fx)]
    assert labels == ["a", "b", "c"], labels  # a resumed from its checkpoint, b re-run only because it never ended
    assert pg_rows(dsn, "SELECT status, generation FROM runs") == [("succeeded", 2)]


def test_a_node_longer_than_the_lease_runs_once(two, tmp_path):
    a, b, dsn = two
    fx = tmp_path / "fx.jsonl"
    manifest_node = {"workflow": "slow3", "run_id": "long-1", "context": {"sleep_seconds": 2.5, "effects": str(fx)}}
    raw = json.dumps(manifest_node).encode()
    sig = sign(HMAC_KEY.encode(), raw)
    first: list = []
    sender = threading.Thread(target=lambda: first.append(post(a.url, raw=raw, signature=sig, timeout=30)))
    sender.start()
    wait_until(lambda: pg_rows(dsn, "SELECT 1 FROM runs WHERE run_id='long-1'"))
    deadline = time.monotonic() + 4.5  # node a alone outlives the 3 s lease; the heartbeat keeps it
    while time.monotonic() < deadline:
        code, body = post(b.url, raw=raw, signature=sig)
        assert (code, body.get("error")) == (409, "run_in_progress"), body
        time.sleep(0.5)
    sender.join(30)
    assert first and first[0][0] == 200 and first[0][1]["attempts"] == 1, first
    assert [e["label"] for e in effects(fx)] == ["a", "b", "c"]
    assert pg_rows(dsn, "SELECT status, generation FROM runs") == [("succeeded", 1)]
