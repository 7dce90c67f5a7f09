"""Queue adapters with real parts: the local SQLite queue against a loopback HTTP server, and the
cloudtasks adapter through the official client against the in-process Cloud Tasks emulator."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from runtime.adapters.base import AdapterContext, AdapterError
from runtime.adapters.queue_cloudtasks import CloudTasksQueue
from runtime.adapters.queue_local import LocalQueue
from runtime.tasks_auth import HmacVerifier
from runtime.workflows.messages import task_name_for
from runtime.workflows.service import service_for
from tests.support.env import wait_until
from tests.support.fake_runtime import HMAC_KEY, FakeRuntime

from .conftest import create_queue


def _local(tmp_path, **settings) -> LocalQueue:
    ctx = AdapterContext(project_dir=tmp_path, cache_dir=tmp_path / "cache", profile="test")
    q = LocalQueue({"min_backoff_seconds": 0.05, "max_backoff_seconds": 0.2, **settings}, context=ctx)
    q.activate()
    return q


def test_task_names_are_deterministic_and_valid():
    a, b = task_name_for("run 1/ü"), task_name_for("run 1/ü")
    assert a == b and a != task_name_for("run 2")
    assert all(c.isalnum() or c in "-_" for c in a) and len(a) <= 500


def test_local_queue_delivers_with_cloud_tasks_headers_and_a_fresh_signature_per_attempt(tmp_path, recorder):
    from runtime.tasks_auth import sign

    q = _local(tmp_path, http_target_url=recorder.url, queue="wf")
    q.bind(signer=lambda body: {"X-Oneiric-Signature": sign(HMAC_KEY.encode(), body)})
    recorder.script = [(500, {}, b"{}"), (503, {"Retry-After": "0"}, b"{}"), (200, {}, b"{}")]
    assert q.enqueue(body=b'{"workflow":"w"}', task_name="t-1") == {"task_name": "t-1", "deduplicated": False}
    assert q.enqueue(body=b'{"workflow":"w"}', task_name="t-1")["deduplicated"] is True
    q.start(workers=2)
    try:
        wait_until(lambda: q.task("t-1")["status"] == "done")
    finally:
        q.close()
    reqs = recorder.requests
    assert len(reqs) == 3
    assert [r["headers"]["X-CloudTasks-TaskRetryCount"] for r in reqs] == ["0", "1", "2"]
    for r in reqs:
        h = r["headers"]
        assert h["Content-Type"] == "application/json" and h["X-CloudTasks-QueueName"] == "wf"
        assert h["X-CloudTasks-TaskName"] == "t-1" and r["body"] == b'{"workflow":"w"}'
        HmacVerifier(HMAC_KEY.encode()).verify(r["body"], h)
    assert reqs[1]["at"] - reqs[0]["at"] >= 0.04  # backoff between attempts


def test_local_queue_gives_up_after_max_attempts_and_reports_it(tmp_path, recorder):
    q = _local(tmp_path, http_target_url=recorder.url, max_attempts=2)
    recorder.handler = lambda body, headers: (500, {}, b"{}")
    q.enqueue(body=b"{}", task_name="doomed")
    q.start(workers=1)
    try:
        wait_until(lambda: q.task("doomed")["status"] == "dead")
        time.sleep(0.3)
        health = q.health()
    finally:
        q.close()
    assert len(recorder.requests) == 2
    assert health["status"] == "degraded" and health["detail"]["dead"] == 1


def test_local_queue_503_answers_do_not_use_up_the_retry_budget(tmp_path, recorder):
    q = _local(tmp_path, http_target_url=recorder.url, max_attempts=2)
    recorder.script = [(503, {"Retry-After": "0"}, b"{}")] * 4 + [(500, {}, b"{}"), (200, {}, b"{}")]
    q.enqueue(body=b"{}", task_name="held")
    q.start(workers=1)
    try:
        wait_until(lambda: q.task("held")["status"] in ("done", "dead"))
        assert q.task("held")["status"] == "done" and len(recorder.requests) == 6
    finally:
        q.close()


def test_local_queue_survives_a_restart_with_a_task_pending(tmp_path, recorder):
    q1 = _local(tmp_path, http_target_url=recorder.url)
    q1.enqueue(body=b'{"n":1}', task_name="pending-1")
    # a dispatcher that died holding a lease (pid that no longer exists)
    q1.enqueue(body=b'{"n":2}', task_name="orphan-1")
    with sqlite3.connect(q1.path) as db:
        db.execute("UPDATE tasks SET status='leased', owner='%s:999999999', lease_until=? WHERE name='orphan-1'"
                   % __import__("socket").gethostname(), (time.time() + 3600,))
    q1.close()
    assert recorder.requests == []
    q2 = _local(tmp_path, http_target_url=recorder.url)
    q2.start(workers=1)
    try:
        wait_until(lambda: q2.task("pending-1")["status"] == "done" and q2.task("orphan-1")["status"] == "done")
    finally:
        q2.close()
    assert sorted(r["body"] for r in recorder.requests) == [b'{"n":1}', b'{"n":2}']


def test_local_queue_opens_its_database_on_first_use(tmp_path):
    """activate() only makes the cache dir (the server answers its first 200 before sqlite3 loads)."""
    q = _local(tmp_path)
    assert q.path == tmp_path / "cache" / "workflow_queue.sqlite" and q.path.parent.is_dir()
    assert not q.path.exists()
    assert q.enqueue(body=b"{}", task_name="first")["deduplicated"] is False
    assert q.path.exists() and q.task("first")["status"] == "pending"
    q.close()


def test_local_queue_database_that_cannot_open_is_a_health_error(tmp_path):
    q = _local(tmp_path)
    q.path.mkdir()  # a directory where the database file belongs
    health = q.health()
    assert health["status"] == "error" and "queue database" in health["detail"]
    q.close()


def test_backoff_is_exponential_within_bounds(tmp_path):
    q = _local(tmp_path, min_backoff_seconds=0.5, max_backoff_seconds=3)
    assert [q.backoff(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]
    assert q.backoff(1, retry_after=2.5) == 2.5 and q.backoff(1, retry_after=99) == 3


# ---------------------------------------------------------------- cloudtasks + emulator

def _cloudtasks(tmp_path, port: int, target: str, **extra) -> CloudTasksQueue:
    ctx = AdapterContext(project_dir=tmp_path, cache_dir=tmp_path / "cache", profile="test")
    settings = {"project_id": "oneiric-test", "location": "us-central1", "queue": "wf", "http_target_url": target,
                "emulator_host": f"127.0.0.1:{port}", **extra}
    q = CloudTasksQueue(settings, context=ctx)
    q.activate()
    return q


def test_cloudtasks_activate_checks_settings_and_builds_no_client(tmp_path):
    q = CloudTasksQueue({"project_id": "p", "location": "l", "queue": "q", "http_target_url": "http://x/",
                         "emulator_host": "127.0.0.1:9"})
    q.activate()
    assert q._client is None  # built by the first enqueue or health probe
    with pytest.raises(AdapterError, match="missing settings queue"):
        CloudTasksQueue({"project_id": "p", "location": "l", "http_target_url": "http://x/"}).activate()


def test_cloudtasks_adapter_creates_http_tasks_the_emulator_delivers(tmp_path, emulator, recorder):
    port, client = emulator
    q = _cloudtasks(tmp_path, port, recorder.url)
    assert q.health()["status"] == "error"  # no such queue yet (the emulator answers UNKNOWN, not NOT_FOUND)
    create_queue(client, "oneiric-test", "us-central1", "wf")
    assert q.health() == {"status": "ready", "detail": {
        "queue": "projects/oneiric-test/locations/us-central1/queues/wf", "state": "RUNNING",
        "target": recorder.url}}
    res = q.enqueue(body=b'{"workflow":"w"}', task_name="abc-1", headers={"X-Oneiric-Signature": "t=1,v1=00"})
    assert res == {"task_name": "abc-1", "deduplicated": False}
    wait_until(lambda: recorder.requests)
    req = recorder.requests[0]
    assert req["body"] == b'{"workflow":"w"}'
    h = req["headers"]
    assert h["Content-Type"] == "application/json" and h["X-CloudTasks-TaskName"] == "abc-1"
    assert h["X-Oneiric-Signature"] == "t=1,v1=00" and h["X-CloudTasks-TaskRetryCount"] == "0"
    assert h["X-CloudTasks-QueueName"].endswith("/queues/wf")
    q.close()


def test_cloudtasks_oidc_token_settings_are_attached(tmp_path, emulator, recorder):
    port, client = emulator
    create_queue(client, "oneiric-test", "us-central1", "wf")
    client.pause_queue(name="projects/oneiric-test/locations/us-central1/queues/wf")
    q = _cloudtasks(tmp_path, port, recorder.url, service_account_email="sa@oneiric-test.iam.gserviceaccount.com",
                    dispatch_deadline_seconds=120)
    q.enqueue(body=b"{}", task_name="with-oidc")
    tasks = client.list_tasks(parent="projects/oneiric-test/locations/us-central1/queues/wf")
    task = list(tasks)[0]
    assert task.http_request.oidc_token.service_account_email == "sa@oneiric-test.iam.gserviceaccount.com"
    assert task.http_request.oidc_token.audience == recorder.url
    assert task.dispatch_deadline.total_seconds() == 120
    q.close()


def test_enqueue_through_cloudtasks_is_deduplicated_by_run_id(tmp_path, emulator, recorder):
    """The emulator accepts duplicate names, so our own record of enqueued task names must stop the repeat."""
    port, client = emulator
    create_queue(client, "oneiric-test", "us-central1", "wf")
    q = _cloudtasks(tmp_path, port, recorder.url)
    rt = FakeRuntime(tmp_path, queue=("cloudtasks", q), queue_category="queue.scheduler")
    svc = service_for(rt)
    first = svc.enqueue("ingest", context={"records": ["a"]}, run_id="run-dedupe")
    second = svc.enqueue("ingest", context={"records": ["a"]}, run_id="run-dedupe")
    assert first["deduplicated"] is False and second["deduplicated"] is True
    assert first["task_name"] == second["task_name"] == task_name_for("run-dedupe")
    assert (first["queue_category"], first["queue_provider"]) == ("queue.scheduler", "cloudtasks")
    wait_until(lambda: recorder.requests)
    time.sleep(0.5)
    assert len(recorder.requests) == 1
    body = json.loads(recorder.requests[0]["body"])
    assert body["workflow"] == "ingest" and body["run_id"] == "run-dedupe" and body["context"] == {"records": ["a"]}
    HmacVerifier(HMAC_KEY.encode()).verify(recorder.requests[0]["body"], recorder.requests[0]["headers"])
    q.close()


def test_cloudtasks_already_exists_counts_as_success(tmp_path):
    """The real service answers ALREADY_EXISTS for a repeated name; the emulator never does, so fake the client."""
    from google.api_core import exceptions as gexc

    class Client:
        def create_task(self, **kw):
            raise gexc.AlreadyExists("task exists")

    q = CloudTasksQueue({"project_id": "p", "location": "l", "queue": "q", "http_target_url": "http://x/"})
    q._client, q.queue_path = Client(), "projects/p/locations/l/queues/q"
    assert q.enqueue(body=b"{}", task_name="t") == {"task_name": "t", "deduplicated": True}

    class Broken:
        def create_task(self, **kw):
            raise gexc.PermissionDenied("no")

    q._client = Broken()
    with pytest.raises(Exception, match="PermissionDenied"):
        q.enqueue(body=b"{}", task_name="t")


def test_a_workflow_scheduler_category_overrides_the_global_one(tmp_path, recorder):
    from runtime.model import Selection, replace

    from tests.support.fake_runtime import node, workflow_entry

    default_q = _local(tmp_path / "a", http_target_url=recorder.url, queue="default-q")
    fast_q = _local(tmp_path / "b", http_target_url=recorder.url, queue="fast-q")
    special = replace(workflow_entry("special", [node("x", "noop")]),
                                  metadata={"scheduler": {"queue_category": "queue.fast.lane", "provider": "local"}})
    from tests.support.fake_runtime import standard_workflows

    rt = FakeRuntime(tmp_path, workflows=standard_workflows() + [special], queue=("local", default_q))
    rt.adapters[("adapter", "queue.fast")] = fast_q
    rt.profile = replace(rt.profile, selections=rt.profile.selections + (
        Selection("adapter", "queue.fast", "local", "x:y", {}, "builtin", "test"),))
    svc = service_for(rt)
    assert svc.queue_category("ingest") == "queue" and svc.queue_category("special") == "queue.fast.lane"
    a = svc.enqueue("ingest", run_id="r-a")
    b = svc.enqueue("special", run_id="r-b")
    assert (a["queue_category"], b["queue_category"]) == ("queue", "queue.fast.lane")
    assert default_q.task(a["task_name"]) is not None and default_q.task(b["task_name"]) is None
    assert fast_q.task(b["task_name"]) is not None
    assert svc.delivery_warnings(svc.queue("special"), "special") == []
    rt.profile = replace(rt.profile, selections=tuple(
        replace(x, provider="cloudtasks") if x.key == "queue.fast" else x for x in rt.profile.selections))
    assert "expects queue provider 'local'" in svc.delivery_warnings(svc.queue("special"), "special")[0]
    rt.profile = replace(rt.profile, selections=tuple(
        replace(x, provider="local") if x.key == "queue.fast" else x for x in rt.profile.selections))
    svc.start(port=1)
    try:
        assert default_q.state == fast_q.state == "running"  # both dispatchers started by the server hook
        wait_until(lambda: len(recorder.requests) == 2)
    finally:
        from runtime.workflows.service import stop

        stop(rt)
        default_q.close()
        fast_q.close()
    assert sorted(r["headers"]["X-CloudTasks-QueueName"] for r in recorder.requests) == ["default-q", "fast-q"]
