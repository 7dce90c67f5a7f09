"""End to end: a compiled project, `python -m oneiric.cli orchestrate` and `workflow ...` as real subprocesses,
the Cloud Tasks emulator in process, real HTTP on 127.0.0.1 and the SQLite files they share.

Tests named `serverless_profile` run the project's `serverless` profile (cloudtasks queue, HMAC auth).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from runtime.tasks_auth import sign
from tests.support.cli import compile_project, run_cli
from tests.support.effects import effects
from tests.support.env import clean_env, free_port, wait_until
from tests.support.fake_runtime import HMAC_KEY
from tests.support.projects import write_project

from .conftest import create_queue

PROJECT, LOCATION, QUEUE = "oneiric-test", "us-central1", "wf"

SERVERLESS_TOML = """
[profile]
name = "serverless"

[secrets]
provider = "env"

[adapters.selections]
queue = "cloudtasks"

[workflows.options]
queue_category = "queue.scheduler"

[adapters.provider_settings.cloudtasks]
project_id = "oneiric-test"
location = "us-central1"
queue = "wf"
http_target_url = "http://127.0.0.1:9/tasks/workflow"
emulator_host = "127.0.0.1:9"
max_retry_duration_seconds = 300

[http]
tasks_auth = "hmac"
hmac_key = "secret://tasks-hmac-key"
max_body_bytes = 2048

[runtime.supervisor]
poll_interval = 0.2

[logging]
format = "json"
"""

LOCAL_TOML = """
[profile]
name = "local"

[profiles.local]
extends = "default"

[secrets]
provider = "env"

[adapters.selections]
queue = "local"

[adapters.provider_settings.local]
min_backoff_seconds = 0.2
max_backoff_seconds = 1

[http]
tasks_auth = "hmac"
hmac_key = "secret://tasks-hmac-key"

[runtime.supervisor]
poll_interval = 0.2

[logging]
format = "json"
"""

MANIFEST = """
source: workflows-e2e
entries:
  - {domain: task, key: extract, provider: demo, factory: "oneiric.demo.tasks:extract"}
  - {domain: task, key: transform, provider: demo, factory: "oneiric.demo.tasks:transform"}
  - {domain: task, key: load, provider: demo, factory: "oneiric.demo.tasks:load"}
  - {domain: task, key: flaky, provider: demo, factory: "oneiric.demo.tasks:flaky"}
  - {domain: task, key: sleep, provider: demo, factory: "oneiric.demo.tasks:sleep"}
  - domain: workflow
    key: slow
    provider: dag
    factory: "runtime.workflows.engine:Engine"
    dag:
      nodes:
        - {id: first, task: sleep, payload: {label: first}}
        - {id: second, task: sleep, depends_on: [first], payload: {label: second}}
  - domain: workflow
    key: ingest
    provider: dag
    factory: "runtime.workflows.engine:Engine"
    dag:
      nodes:
        - {id: extract, task: extract}
        - {id: transform, task: transform, depends_on: [extract]}
        - {id: load, task: load, depends_on: [transform], payload: {target: vector}}
  - domain: workflow
    key: flaky
    provider: dag
    factory: "runtime.workflows.engine:Engine"
    dag:
      nodes:
        - {id: extract, task: extract}
        - {id: flaky, task: flaky, depends_on: [extract], payload: {fail_times: 2, label: flaky},
           retry_policy: {attempts: 1}}
        - {id: load, task: load, depends_on: [flaky]}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = write_project(tmp_path_factory.mktemp("wfproject"), MANIFEST, SERVERLESS_TOML, profile="serverless",
                         manifest_name="workflows.yaml")
    (root / "config" / "local.toml").write_text(LOCAL_TOML)
    compile_project(root)
    return root


def _env(root: Path, profile: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return clean_env(ONEIRIC_CONFIG=str(root / "config" / f"{profile}.toml"), ONEIRIC_PROFILE=profile,
                     ONEIRIC_SECRET_TASKS_HMAC_KEY=HMAC_KEY, **(extra or {}))


class Orchestrator:
    """`python -m oneiric.cli orchestrate` on a free loopback port; its JSON log lines land in a file."""

    def __init__(self, root: Path, profile: str, env: dict[str, str], port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = root / f"orchestrate-{profile}-{self.port}-{time.time_ns()}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "oneiric.cli", "orchestrate", "--no-remote", "--no-watch",
             "--http-host", "127.0.0.1"],
            cwd=root, env={**env, "PORT": str(self.port)}, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            wait_until(self._healthy, timeout=30, interval=0.05)
        except AssertionError:
            self.stop()
            raise AssertionError("orchestrate did not become healthy:\n" + self.log_path.read_text()[-3000:])

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError("orchestrate exited:\n" + self.log_path.read_text()[-3000:])
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def deliveries(self, run_id: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.lines() if r.get("message") == "workflow delivery"
                and (run_id is None or r.get("run_id") == run_id)]

    def post(self, obj: Any = None, *, raw: bytes | None = None, signed: bool = True, t: int | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], Any]:
        body = raw if raw is not None else json.dumps(obj).encode()
        h = {"Content-Type": "application/json"}
        if signed:
            h["X-Oneiric-Signature"] = sign(HMAC_KEY.encode(), body, t)
        h.update(headers or {})
        req = urllib.request.Request(self.url + "/tasks/workflow", data=body, headers=h, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read()), r.headers
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}"), e.headers

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def run_row(root: Path, run_id: str) -> dict[str, Any] | None:
    path = root / ".oneiric_cache" / "workflow_runs.sqlite"
    if not path.exists():
        return None
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
            return dict(row) if row else None
    except sqlite3.OperationalError:  # the server created the file but not yet its tables
        return None


@pytest.fixture
def serverless(project, emulator):
    port, client = emulator
    try:
        create_queue(client, PROJECT, LOCATION, QUEUE)
    except Exception:
        pass
    http_port = free_port()
    env = _env(project, "serverless", {
        "ONEIRIC_ADAPTERS_PROVIDER_SETTINGS_CLOUDTASKS__EMULATOR_HOST": f"127.0.0.1:{port}",
        "ONEIRIC_ADAPTERS_PROVIDER_SETTINGS_CLOUDTASKS__HTTP_TARGET_URL": f"http://127.0.0.1:{http_port}/tasks/workflow",
    })
    server = Orchestrator(project, "serverless", env, http_port)
    yield server, env, client
    assert server.stop() == 0


def test_serverless_profile_enqueue_through_cloudtasks_emulator_completes(serverless, project, tmp_path):
    server, env, _ = serverless
    fx = tmp_path / "fx.jsonl"
    ctx = json.dumps({"records": ["a", "b"], "effects": str(fx)})
    out = run_cli("workflow", "enqueue", "ingest", "--context", ctx, "--run-id", "e2e-1", "--json",
                  cwd=project, env=env)
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert "use oidc with Cloud Tasks in production" in out.stderr  # hmac pre-signed at enqueue: advice
    assert set(record) >= {"workflow", "run_id", "task_name", "queue_category", "queue_provider", "queued_at"}
    assert (record["workflow"], record["run_id"], record["queue_category"], record["queue_provider"]) == (
        "ingest", "e2e-1", "queue.scheduler", "cloudtasks")
    wait_until(lambda: (run_row(project, "e2e-1") or {}).get("status") == "succeeded", timeout=20)
    status = run_cli("workflow", "status", "e2e-1", "--json", cwd=project, env=env)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["result"] == {"extract": {"records": ["a", "b"], "count": 2}, "transform": {"records": ["A", "B"]},
                              "load": {"loaded": 2, "target": "vector"}}
    assert data["task_name"] == record["task_name"] and [n["status"] for n in data["nodes"]] == ["succeeded"] * 3
    delivered = server.deliveries("e2e-1")
    assert delivered[0]["task"] == record["task_name"] and delivered[0]["queue"].endswith("/queues/wf")

    # a repeated enqueue is deduplicated (the emulator would accept the duplicate name: we must not send it)
    again = run_cli("workflow", "enqueue", "ingest", "--context", ctx, "--run-id", "e2e-1", "--json",
                    cwd=project, env=env)
    assert again.returncode == 0 and json.loads(again.stdout)["deduplicated"] is True
    # a duplicate delivery (same task, fresh signature) answers the stored result and runs nothing
    body = {"workflow": "ingest", "run_id": "e2e-1", "context": json.loads(ctx)}
    code, reply, _ = server.post(body, headers={"X-CloudTasks-TaskName": record["task_name"]})
    assert code == 200 and reply["deduplicated"] is True and reply["result"] == data["result"]
    time.sleep(0.5)
    assert len(server.deliveries("e2e-1")) == 2  # the emulator's one plus ours
    assert [e["task"] for e in effects(fx)] == ["extract", "transform", "load"]


def test_serverless_profile_cloudtasks_retries_a_failing_task_until_it_succeeds(serverless, project, tmp_path):
    server, env, _ = serverless
    fx = tmp_path / "fx.jsonl"
    out = run_cli("workflow", "enqueue", "flaky", "--context", json.dumps({"effects": str(fx)}), "--run-id", "e2e-flaky", "--json", cwd=project, env=env)
    assert out.returncode == 0, out.stderr
    wait_until(lambda: (run_row(project, "e2e-flaky") or {}).get("status") == "succeeded", timeout=20)
    log = server.deliveries("e2e-flaky")
    assert [(r["http_status"], r["retry_count"]) for r in log] == [(500, "0"), (500, "1"), (200, "2")]
    ran = [e["task"] for e in effects(fx)]
    assert ran == ["extract", "flaky", "flaky", "flaky", "load"]  # extract checkpointed once, never re-run
    assert run_row(project, "e2e-flaky")["attempts"] == 3


def test_serverless_profile_http_errors_pause_and_resume(serverless, project):
    server, env, _ = serverless
    # 401: unsigned, tampered; a replayed signature reaches the same run: its stored result, nothing runs
    assert server.post({"workflow": "ingest"}, signed=False)[0] == 401
    raw = json.dumps({"workflow": "ingest", "run_id": "e2e-auth"}).encode()
    sig = sign(HMAC_KEY.encode(), raw)
    tampered = raw.replace(b"e2e-auth", b"e2e-evil")
    assert server.post(raw=tampered, signed=False, headers={"X-Oneiric-Signature": sig})[0] == 401
    assert server.post(raw=raw, signed=False, headers={"X-Oneiric-Signature": sig})[0] == 200
    code, body, _ = server.post(raw=raw, signed=False, headers={"X-Oneiric-Signature": sig})
    assert (code, body["deduplicated"], body["attempts"]) == (200, True, 1)
    # 400, 404, 413
    code, body, _ = server.post(raw=b"{not json")
    assert (code, body["error"]) == (400, "bad_request")
    code, body, _ = server.post({"workflow": "nope"})
    assert (code, body["error"]) == (404, "unknown_workflow")
    code, _, _ = server.post({"workflow": "ingest", "context": {"pad": "x" * 4000}})
    assert code == 413
    # paused -> 503 with Retry-After, nothing runs; resume -> completes
    out = run_cli("activity", "pause", "--domain", "workflow", "--key", "ingest", "--json", cwd=project, env=env)
    assert out.returncode == 0, out.stderr
    probes = iter(range(1000))
    wait_until(lambda: server.post({"workflow": "ingest", "run_id": f"probe-{next(probes)}"})[0] == 503, timeout=10)
    msg = {"workflow": "ingest", "run_id": "e2e-paused"}
    reply = server.post(msg)
    assert reply[0] == 503 and reply[1]["error"] == "paused" and int(reply[2]["Retry-After"]) > 0
    assert run_row(project, "e2e-paused") is None
    out = run_cli("activity", "resume", "--domain", "workflow", "--key", "ingest", cwd=project, env=env)
    assert out.returncode == 0, out.stderr
    reply = wait_until(lambda: (lambda r: r if r[0] == 200 else None)(server.post(msg)), timeout=10)
    assert reply[1]["result"]["load"] == {"loaded": 0, "target": "vector"}


def test_local_queue_survives_a_restart_with_a_task_pending(project, tmp_path):
    env = _env(project, "local")
    port = free_port()
    fx = tmp_path / "fx.jsonl"
    first = Orchestrator(project, "local", env, port)
    try:
        assert run_cli("activity", "pause", "--domain", "workflow", "--key", "ingest",
                       cwd=project, env=env).returncode == 0
        out = run_cli("workflow", "enqueue", "ingest", "--run-id", "local-1", "--json", "--context", json.dumps({"records": ["x"], "effects": str(fx)}), cwd=project, env=env)
        assert out.returncode == 0, out.stderr
        record = json.loads(out.stdout)
        assert (record["queue_category"], record["queue_provider"]) == ("queue", "local")
        # the dispatcher delivered it at least once and got 503 (paused): the task stays pending
        wait_until(lambda: any(r["http_status"] == 503 for r in first.deliveries("local-1")), timeout=15)
    finally:
        first.stop(signal.SIGKILL)
    assert run_row(project, "local-1") is None and effects(fx) == []
    assert run_cli("activity", "resume", "--domain", "workflow", "--key", "ingest",
                   cwd=project, env=env).returncode == 0
    second = Orchestrator(project, "local", env, port)
    try:
        wait_until(lambda: (run_row(project, "local-1") or {}).get("status") == "succeeded", timeout=20)
        # the delivery's log line is written after the run row: wait for it rather than race it
        wait_until(lambda: second.deliveries("local-1"), timeout=10)
        assert [r["http_status"] for r in second.deliveries("local-1")] == [200]
    finally:
        assert second.stop() == 0
    assert [e["task"] for e in effects(fx)] == ["extract", "transform", "load"]
    status = run_cli("workflow", "status", "local-1", "--json", cwd=project, env=env)
    assert json.loads(status.stdout)["result"]["load"] == {"loaded": 1, "target": "vector"}


def test_workflow_run_and_list_in_process(project, tmp_path):
    env = _env(project, "local")
    fx = tmp_path / "fx.jsonl"
    out = run_cli("workflow", "run", "ingest", "--run-id", "inproc-1", "--json", "--context", json.dumps({"records": ["q"], "effects": str(fx)}), cwd=project, env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["result"]["transform"] == {"records": ["Q"]}
    again = run_cli("workflow", "run", "ingest", "--run-id", "inproc-1", "--json", cwd=project, env=env)
    assert again.returncode == 0 and json.loads(again.stdout)["deduplicated"] is True
    assert len(effects(fx)) == 3
    failing = run_cli("workflow", "run", "flaky", "--run-id", "inproc-2", cwd=project, env=env)
    assert failing.returncode == 1 and "planned failure 1 of 2" in failing.stdout, failing.stdout
    status = json.loads(run_cli("workflow", "status", "inproc-2", "--json", cwd=project, env=env).stdout)
    assert status["status"] == "failed" and [n["status"] for n in status["nodes"]] == ["succeeded", "failed"]
    listing = run_cli("workflow", "list", "--json", cwd=project, env=env)
    rows = {r["workflow"]: r for r in json.loads(listing.stdout)}
    assert rows["ingest"]["nodes"] == ["extract", "transform", "load"]
    assert rows["ingest"]["last_run"]["run_id"] in ("inproc-1", "local-1")
    assert run_cli("workflow", "status", "no-such-run", cwd=project, env=env).returncode == 1
    assert run_cli("workflow", "enqueue", "no-such-workflow", cwd=project, env=env).returncode == 1
    assert run_cli("workflow", "enqueue", "ingest", "--context", "[1]", cwd=project, env=env).returncode == 2


def test_sigterm_lets_an_in_flight_run_finish(project, tmp_path):
    import threading

    env = _env(project, "local")
    fx = tmp_path / "fx.jsonl"
    server = Orchestrator(project, "local", env)
    replies: list = []
    msg = {"workflow": "slow", "run_id": "drain-1", "context": {"sleep_seconds": 0.6, "effects": str(fx)}}
    t = threading.Thread(target=lambda: replies.append(server.post(msg)))
    t.start()
    try:
        wait_until(lambda: effects(fx) or (run_row(project, "drain-1") or {}).get("status") == "running", timeout=10)
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == 0  # the server waited for the drain, within shutdown_grace_seconds (8 s)
    t.join(timeout=10)
    assert replies and replies[0][0] == 200, replies
    assert [e["label"] for e in effects(fx)] == ["first", "second"]  # the second node still ran after SIGTERM
    assert run_row(project, "drain-1")["status"] == "succeeded"
