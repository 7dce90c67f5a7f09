"""Delivery semantics through the Cloud Tasks emulator (the official client, real HTTP pushes): a poison
task is dead-lettered and not delivered again, and a task answered 503 while draining succeeds on a
later retry although its signature (made once, at enqueue) is older than the clock-skew window."""

from __future__ import annotations

import json
import time
from typing import Any, Iterator

import pytest

from runtime.tasks_auth import sign
from tests.support.cli import run_cli
from tests.support.env import free_port, wait_until

from .project import HMAC_KEY, MANIFEST, SETTINGS, effects, env_for, make_project, post, start

PROJECT, LOCATION, QUEUE = "oneiric-test", "us-central1", "wf"

CLOUDTASKS = SETTINGS.replace('queue = "local"', 'queue = "cloudtasks"').replace(
    'hmac_key = "secret://tasks-hmac-key"', 'hmac_key = "secret://tasks-hmac-key"\nhmac_skew_seconds = 2\n'
    'hmac_window_seconds = 60') + """
[adapters.provider_settings.cloudtasks]
project_id = "oneiric-test"
location = "us-central1"
queue = "wf"
http_target_url = "http://127.0.0.1:9/tasks/workflow"
emulator_host = "127.0.0.1:9"
max_retry_duration_seconds = 60
"""



@pytest.fixture
def cloudtasks(tmp_path) -> Iterator[tuple[Any, Any, dict[str, str], Any]]:
    """(instance, project root, env, client): orchestrate whose queue is the emulator, which pushes back to it."""
    import grpc
    from gcloud_tasks_emulator.server import create_server
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    port = free_port()
    srv = create_server("127.0.0.1", port, max_retries=500)  # retries about every 0.1 s
    srv.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    parent = f"projects/{PROJECT}/locations/{LOCATION}"
    wait_until(lambda: _ready(client, parent), 10)
    client.create_queue(parent=parent, queue={"name": f"{parent}/queues/{QUEUE}"})
    root = make_project(tmp_path / "p", settings=CLOUDTASKS, manifest=MANIFEST)
    http_port = free_port()
    env = env_for(root, ONEIRIC_ADAPTERS_PROVIDER_SETTINGS_CLOUDTASKS__EMULATOR_HOST=f"127.0.0.1:{port}",
                  ONEIRIC_ADAPTERS_PROVIDER_SETTINGS_CLOUDTASKS__HTTP_TARGET_URL=
                  f"http://127.0.0.1:{http_port}/tasks/workflow")
    inst = start(root, env, http_port=http_port)
    try:
        yield inst, root, env, client
    finally:
        inst.close()
        channel.close()
        srv.stop()


def _ready(client: Any, parent: str) -> bool:
    try:
        client.list_queues(parent=parent, timeout=1)
        return True
    except Exception:
        return False


def _deliveries(inst: Any, task_suffix: str) -> list[dict]:
    return [r for r in inst.records if r.get("message", "").startswith("workflow delivery")
            and str(r.get("task") or "").endswith(task_suffix)]


def test_a_poison_task_is_dead_lettered_and_delivered_at_most_once_more(cloudtasks):
    inst, root, env, client = cloudtasks
    body = json.dumps({"workflow": "no-such-workflow", "run_id": "poison-1"}).encode()
    queue = client.queue_path(PROJECT, LOCATION, QUEUE)
    client.create_task(parent=queue, task={"name": f"{queue}/tasks/poison-1", "http_request": {
        "http_method": "POST", "url": f"{inst.url}/tasks/workflow", "body": body,
        "headers": {"Content-Type": "application/json", "X-Oneiric-Signature": sign(HMAC_KEY.encode(), body)}}})
    first = wait_until(lambda: _deliveries(inst, "poison-1"), 15)[0]
    assert (first["http_status"], first["message"], first["severity"]) == (
        200, "workflow delivery dead-lettered", "ERROR")
    time.sleep(1.0)  # ten of the emulator's retry intervals
    assert len(_deliveries(inst, "poison-1")) <= 2
    out = run_cli(*["workflow", "list", "--dead", "--json"], cwd=root, env=env, timeout=60)
    assert [(d["reason"], d["run_id"]) for d in json.loads(out.stdout)] == [("unknown_workflow", "poison-1")]


def test_serverless_profile_a_drained_task_succeeds_on_a_retry_past_the_skew_window(cloudtasks, tmp_path):
    inst, root, env, _ = cloudtasks
    fx = tmp_path / "fx.jsonl"
    out = run_cli(*["activity", "drain", "--domain", "workflow", "--key", "ingest"], cwd=root, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    probes = iter(range(1000))
    wait_until(lambda: post(inst.url, {"workflow": "ingest", "run_id": f"probe-{next(probes)}"})[0] == 503, 10)
    out = run_cli(*["workflow", "enqueue", "ingest", "--run-id", "late-1", "--json",
                   "--context", json.dumps({"records": ["x"], "effects": str(fx)})], cwd=root, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    enqueued_at = time.monotonic()
    wait_until(lambda: any(r["http_status"] == 503 for r in _deliveries(inst, "late-1")), 15)
    wait_until(lambda: time.monotonic() - enqueued_at > 3.0, 10)  # past the 2 s clock-skew window
    # the same signature sent directly (no queue headers) is too old by now
    code, body = post(inst.url, {"workflow": "ingest", "run_id": "direct-old"})
    assert code in (200, 503)  # a fresh signature is fine (draining answers 503)
    stale = json.dumps({"workflow": "ingest", "run_id": "direct-old"}).encode()
    code, body = post(inst.url, raw=stale, signature=sign(HMAC_KEY.encode(), stale, int(time.time()) - 4))
    assert (code, body["error"]) == (401, "unauthenticated")
    out = run_cli(*["activity", "resume", "--domain", "workflow", "--key", "ingest"], cwd=root, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    done = wait_until(lambda: [r for r in _deliveries(inst, "late-1") if r["http_status"] == 200], 20)
    statuses = [r["http_status"] for r in _deliveries(inst, "late-1")]
    assert statuses[0] == 503 and 401 not in statuses and done[0]["run_id"] == "late-1"
    assert [e["task"] for e in effects(fx)] == ["extract", "transform", "load"]
