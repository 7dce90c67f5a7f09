"""`handle_delivery` in process against a fake Runtime: auth, validation, idempotency, gating, failures."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from runtime.tasks_auth import sign
from runtime.workflows.endpoint import handle_delivery
from runtime.workflows.service import service_for, stop
from tests.support.effects import effects
from tests.support.env import wait_until
from tests.support.fake_runtime import HMAC_KEY, FakeRuntime

#: (t, body) pairs already signed: an identical t and body is, by design, a replay
_signed: set[tuple[int, bytes]] = set()


def _fresh_t(body: bytes) -> int:
    """Now, taken per delivery; a second earlier for each time this very body was signed this second."""
    t = int(time.time())
    while (t, body) in _signed:
        t -= 1
    _signed.add((t, body))
    return t


def deliver(rt: Any, obj: Any, *, task: str | None = None, retry: int = 0, signed: bool = True,
            raw: bytes | None = None, extra: dict | None = None) -> tuple[int, dict, dict]:
    body = raw if raw is not None else json.dumps(obj).encode()
    headers = {"Content-Type": "application/json", "X-CloudTasks-QueueName": "q",
               "X-CloudTasks-TaskRetryCount": str(retry), "X-CloudTasks-TaskExecutionCount": str(retry)}
    if task:
        headers["X-CloudTasks-TaskName"] = task
    if signed:
        headers["X-Oneiric-Signature"] = sign(HMAC_KEY.encode(), body, _fresh_t(body))
    headers.update(extra or {})
    return handle_delivery(rt, body, headers)


def test_delivery_runs_the_workflow_and_a_duplicate_runs_nothing(fake_rt, tmp_path):
    fx = tmp_path / "fx.jsonl"
    msg = {"workflow": "ingest", "run_id": "r-1", "context": {"records": ["a"], "effects": str(fx)}}
    status, body, _ = deliver(fake_rt, msg, task="task-1")
    assert status == 200, body
    assert body["result"]["load"] == {"loaded": 1, "target": "vector"} and body["deduplicated"] is False
    for dup in ({"task": "task-1"}, {"task": None}):  # by task name, then by run_id alone
        status, again, _ = deliver(fake_rt, msg, **dup)
        assert status == 200 and again["deduplicated"] is True and again["result"] == body["result"]
    assert [e["task"] for e in effects(fx)] == ["extract", "transform", "load"]
    log = fake_rt.deliveries()
    assert [r["http_status"] for r in log] == [200, 200, 200]
    assert log[0]["queue"] == "q" and log[0]["task"] == "task-1" and log[0]["retry_count"] == "0"
    assert log[0]["run_id"] == "r-1" and log[0]["workflow"] == "ingest"


def test_failed_node_answers_500_and_a_redelivery_resumes(fake_rt, tmp_path):
    fx = tmp_path / "fx.jsonl"
    msg = {"workflow": "flaky", "run_id": "r-2", "context": {"effects": str(fx)}}
    for retry in (0, 1):
        status, body, _ = deliver(fake_rt, msg, task="t2", retry=retry)
        assert status == 500 and body["error"] == "node_failed" and set(body) == {"error", "detail"}
    status, body, _ = deliver(fake_rt, msg, task="t2", retry=2)
    assert status == 200 and body["attempts"] == 3
    ran = [e["task"] for e in effects(fx)]
    assert ran == ["extract", "flaky", "flaky", "flaky", "load"]
    assert [r["retry_count"] for r in fake_rt.deliveries()] == ["0", "1", "2"]


def test_client_supplied_results_or_checkpoints_are_refused(fake_rt):
    status, body, _ = deliver(fake_rt, {"workflow": "ingest", "result": {"load": "forged"}})
    assert status == 400 and "never taken from a request" in body["detail"]
    status, body, _ = deliver(fake_rt, {"workflow": "ingest", "checkpoints": {"extract": {}}})
    assert status == 400


@pytest.mark.parametrize("raw, detail", [
    (b"not json", "not valid UTF-8 JSON"),
    (b"\xff\xfe", "not valid UTF-8 JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"run_id": "x"}', "workflow must be a non-empty string"),
    (b'{"workflow": 3}', "workflow must be a non-empty string"),
    (b'{"workflow": "ingest", "run_id": "bad id with spaces"}', "run_id must match"),
    (b'{"workflow": "ingest", "context": [1]}', "context must be an object"),
    (b'{"workflow": "ingest", "context": {"x": NaN}}', "not valid UTF-8 JSON"),
])
def test_malformed_bodies_get_400(fake_rt, raw, detail):
    status, body, _ = deliver(fake_rt, None, raw=raw)
    assert status == 400 and body["error"] == "bad_request" and detail in body["detail"]


def test_unknown_workflow_404_and_oversized_body_413(fake_rt):
    status, body, _ = deliver(fake_rt, {"workflow": "nope"})
    assert (status, body["error"]) == (404, "unknown_workflow")
    big = {"workflow": "ingest", "context": {"pad": "x" * 5000}}
    status, body, _ = deliver(fake_rt, big)
    assert (status, body["error"]) == (413, "payload_too_large")


def test_unsigned_and_tampered_deliveries_get_401(fake_rt):
    msg = {"workflow": "ingest", "run_id": "r-auth"}
    status, body, headers = deliver(fake_rt, msg, signed=False)
    assert (status, body["error"]) == (401, "unauthenticated") and "WWW-Authenticate" in headers
    raw = json.dumps(msg).encode()
    sig = sign(HMAC_KEY.encode(), raw)
    tampered = json.dumps({"workflow": "ingest", "run_id": "r-other"}).encode()
    status, _, _ = handle_delivery(fake_rt, tampered, {"X-Oneiric-Signature": sig})
    assert status == 401
    assert fake_rt.deliveries()[0]["http_status"] == 401
    assert service_for(fake_rt).store.count_runs() == 0


def test_a_replayed_signature_gets_the_stored_result_even_after_a_restart(fake_rt, tmp_path):
    fx = tmp_path / "fx.jsonl"
    raw = json.dumps({"workflow": "ingest", "run_id": "r-restart", "context": {"effects": str(fx)}}).encode()
    sig = sign(HMAC_KEY.encode(), raw)
    first = handle_delivery(fake_rt, raw, {"X-Oneiric-Signature": sig})
    assert first[0] == 200 and first[1]["deduplicated"] is False
    stop(fake_rt)  # as after a restart: a fresh service and store on the same SQLite file
    again = handle_delivery(fake_rt, raw, {"X-Oneiric-Signature": sig})
    assert (again[0], again[1]["deduplicated"], again[1]["result"]) == (200, True, first[1]["result"])
    assert len(effects(fx)) == 3


def test_a_captured_signature_sent_ten_times_at_once_runs_once(fake_rt, tmp_path):
    """No run_id in the body: the run is keyed by the signed timestamp and the body's digest."""
    fx = tmp_path / "fx.jsonl"
    raw = json.dumps({"workflow": "ingest", "context": {"records": ["a"], "effects": str(fx)}}).encode()
    sig = sign(HMAC_KEY.encode(), raw, _fresh_t(raw))
    answers: list[tuple[int, dict]] = []
    barrier = threading.Barrier(10)

    def replay() -> None:
        barrier.wait()
        status, body, _ = handle_delivery(fake_rt, raw, {"X-Oneiric-Signature": sig})
        answers.append((status, body))

    threads = [threading.Thread(target=replay) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {s for s, _ in answers} <= {200, 409} and len(answers) == 10
    # those that met the run in progress answer 409; the queue retries them and gets the stored result
    answers = [(s, b) if s == 200 else handle_delivery(fake_rt, raw, {"X-Oneiric-Signature": sig})[:2]
               for s, b in answers]
    assert [s for s, _ in answers] == [200] * 10
    assert len({b["run_id"] for _, b in answers}) == 1 and answers[0][1]["run_id"].startswith("sig-")
    assert sorted(e["task"] for e in effects(fx)) == ["extract", "load", "transform"]  # 3 effects, not 30
    assert service_for(fake_rt).store.count_runs() == 1
    # the same body enqueued again later is signed again: a new run
    later = handle_delivery(fake_rt, raw, {"X-Oneiric-Signature": sign(HMAC_KEY.encode(), raw, _fresh_t(raw))})
    assert later[0] == 200 and later[1]["run_id"] != answers[0][1]["run_id"]


def test_queue_deliveries_that_can_never_succeed_are_dead_lettered_with_2xx(fake_rt, tmp_path):
    svc = service_for(fake_rt)
    status, body, _ = deliver(fake_rt, {"workflow": "nope", "run_id": "r-nope"}, task="dl-1")
    assert (status, body["status"], body["error"], body["deliveries"]) == (200, "dead_letter", "unknown_workflow", 1)
    status, body, _ = deliver(fake_rt, {"workflow": "nope", "run_id": "r-nope"}, task="dl-1", retry=1)
    assert (status, body["deliveries"]) == (200, 2)  # a duplicate that was in flight: counted, nothing else
    status, body, _ = deliver(fake_rt, None, raw=b"{not json", task="dl-2")
    assert (status, body["error"]) == (200, "bad_request")
    assert deliver(fake_rt, {"workflow": "noop3", "run_id": "r-a"}, task="dl-3")[0] == 200
    status, body, _ = deliver(fake_rt, {"workflow": "noop3", "run_id": "r-b"}, task="dl-3")  # task name reused
    assert (status, body["status"], body["error"]) == (200, "dead_letter", "run_conflict")
    # a task that rejects the run's context: no retry, the run is dead and stays dead
    fx = tmp_path / "fx.jsonl"
    msg = {"workflow": "picky", "run_id": "r-picky", "context": {"effects": str(fx)}}
    status, body, _ = deliver(fake_rt, msg, task="dl-4")
    assert (status, body["error"], body["run_id"]) == (200, "rejected", "r-picky")
    again = deliver(fake_rt, msg, task="dl-4", retry=1)[1]  # the dead run answers its dead letter again
    assert (again["status"], again["error"], again["deliveries"]) == ("dead_letter", "rejected", 2)
    assert [e["task"] for e in effects(fx)] == ["extract"] and svc.store.get("r-picky").status == "dead"
    assert sorted(d.key for d in svc.store.dead_letters()) == ["dl-1", "dl-2", "dl-3", "dl-4"]
    dead_logs = [r for r in fake_rt.logs if r["message"] == "workflow delivery dead-lettered"]
    assert dead_logs and all(r["severity"] == "ERROR" for r in dead_logs)
    # the same mistakes sent directly (no queue headers) get their 4xx: nothing retries those
    assert deliver(fake_rt, {"workflow": "nope"})[0] == 404
    assert deliver(fake_rt, {"workflow": "picky", "run_id": "r-direct"})[0] == 422


def test_a_store_that_cannot_be_reached_answers_503_not_500(fake_rt):
    fake_rt.settings["state"] = {"backend": "postgres", "dsn": "secret://state-dsn", "connect_timeout_seconds": 1}
    fake_rt.secrets.values["state-dsn"] = "postgresql://nobody@127.0.0.1:1/none"
    status, body, headers = deliver(fake_rt, {"workflow": "noop3", "run_id": "r-down"})
    assert (status, body["error"]) == (503, "state_unavailable") and headers["Retry-After"]
    assert "postgres://127.0.0.1:1/none" in body["detail"] and "nobody" not in json.dumps(body)


def test_paused_workflow_gets_503_with_retry_after_then_completes(fake_rt, tmp_path):
    fx = tmp_path / "fx.jsonl"
    msg = {"workflow": "ingest", "run_id": "r-pause", "context": {"effects": str(fx)}}
    fake_rt.gates[("workflow", "ingest")] = "paused"
    status, body, headers = deliver(fake_rt, msg)
    assert status == 503 and body["error"] == "paused" and int(headers["Retry-After"]) > 0
    assert effects(fx) == []
    fake_rt.gates.clear()
    status, body, _ = deliver(fake_rt, msg)
    assert status == 200 and body["result"]["load"]["loaded"] == 0


def test_draining_task_mid_run_answers_503_and_resumes_later(fake_rt, tmp_path):
    fx = tmp_path / "fx.jsonl"
    msg = {"workflow": "ingest", "run_id": "r-drain", "context": {"effects": str(fx)}}
    fake_rt.gates[("task", "load")] = "draining"
    status, body, headers = deliver(fake_rt, msg)
    assert status == 503 and body["error"] == "draining" and "Retry-After" in headers
    fake_rt.gates.clear()
    assert deliver(fake_rt, msg)[0] == 200
    assert [e["task"] for e in effects(fx)] == ["extract", "transform", "load"]


def test_run_in_progress_gets_409(fake_rt, tmp_path):
    msg = {"workflow": "slow", "run_id": "r-busy", "context": {"sleep_seconds": 0.6}}
    results: list = []
    t = threading.Thread(target=lambda: results.append(deliver(fake_rt, msg)))
    t.start()
    svc = service_for(fake_rt)
    wait_until(lambda: (svc.store.get("r-busy") or None) and svc.store.get("r-busy").status == "running")
    status, body, headers = deliver(fake_rt, msg)
    assert status == 409 and body["error"] == "run_in_progress" and "Retry-After" in headers
    t.join()
    assert results[0][0] == 200
    assert deliver(fake_rt, msg)[1]["deduplicated"] is True


def test_same_run_id_for_another_workflow_is_a_conflict(fake_rt):
    assert deliver(fake_rt, {"workflow": "ingest", "run_id": "r-x"})[0] == 200
    status, body, _ = deliver(fake_rt, {"workflow": "noop3", "run_id": "r-x"})
    assert (status, body["error"]) == (409, "run_conflict")


def test_no_run_id_and_no_task_name_means_a_new_run_each_time(fake_rt):
    a = deliver(fake_rt, {"workflow": "noop3"})[1]["run_id"]
    b = deliver(fake_rt, {"workflow": "noop3"})[1]["run_id"]
    assert a != b and service_for(fake_rt).store.count_runs("succeeded") == 2


def test_auth_none_and_missing_key_configuration(tmp_path):
    rt = FakeRuntime(tmp_path, http={"tasks_auth": "none"})
    assert deliver(rt, {"workflow": "noop3"}, signed=False)[0] == 200
    rt2 = FakeRuntime(tmp_path / "b", http={"hmac_key": None})
    status, body, _ = deliver(rt2, {"workflow": "noop3"})
    assert status == 401 and "hmac_key is not configured" in body["detail"]


def test_oidc_mode_through_the_endpoint(tmp_path):
    from .test_workflow_auth import AUDIENCE, SA, KeyServer, make_token

    ks = KeyServer()
    key = ks.add_key("kid-1")
    try:
        rt = FakeRuntime(tmp_path, http={"tasks_auth": "oidc", "oidc_audience": AUDIENCE, "oidc_service_account": SA,
                                         "oidc_certs_url": ks.url})
        ok = {"Authorization": "Bearer " + make_token(key)}
        assert deliver(rt, {"workflow": "noop3"}, signed=False, extra=ok)[0] == 200
        bad = {"Authorization": "Bearer " + make_token(key, aud="https://other.test/")}
        status, body, headers = deliver(rt, {"workflow": "noop3"}, signed=False, extra=bad)
        assert status == 401 and "audience" in body["detail"] and headers["WWW-Authenticate"] == "Bearer"
        assert deliver(rt, {"workflow": "noop3"}, signed=False)[0] == 401
        assert ks.fetches == 1  # keys fetched once from the configured URL, then cached
        stop(rt)
    finally:
        ks.httpd.shutdown()
        ks.httpd.server_close()


def test_admission_slots_never_hold_long_runs_back_for_more_than_the_wait(fake_rt):
    svc = service_for(fake_rt)
    svc.admission = threading.BoundedSemaphore(2)
    svc.admission_wait = 0.05
    results: list = []

    def one(i: int) -> None:
        results.append(deliver(fake_rt, {"workflow": "slow", "run_id": f"long-{i}", "context": {"sleep_seconds": 0.5}}))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert [r[0] for r in results] == [200] * 6
    spans = [(r[1]["result"]["nap"]["started"], r[1]["result"]["nap"]["finished"]) for r in results]
    at_once = max(sum(1 for s, f in spans if s <= t < f) for t, _ in spans)
    assert at_once > 2  # the two slots would serialise them two by two
    assert svc.admission.acquire(blocking=False) and svc.admission.acquire(blocking=False)  # all released


def test_delivery_log_carries_the_trace_when_cloud_run_sends_one(fake_rt):
    class Logger:
        project_id = "oneiric-test"

    fake_rt.logger = Logger()
    deliver(fake_rt, {"workflow": "noop3"}, extra={"X-Cloud-Trace-Context": "0123456789abcdef0123456789abcdef/42;o=1"})
    line = fake_rt.deliveries()[-1]
    assert line["logging.googleapis.com/trace"] == "projects/oneiric-test/traces/0123456789abcdef0123456789abcdef"
    assert line["logging.googleapis.com/spanId"] == "000000000000002a"
