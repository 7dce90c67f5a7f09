"""Faults with real processes: kill -9, a locked SQLite file, a full or read-only build/, a Secret Manager
outage, and Cloud Tasks duplicate deliveries and out-of-order retries."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.support.effects import effects
from tests.support.env import PYTHON, ROOT, clean_env, wait_until
from tests.support.procs import assert_clean_failure, oneiric
from tests.support.server import http

from .project import HMAC_KEY, env_for, post, query, start

pytestmark = pytest.mark.area("faults")


# ---------------------------------------------------------------- kill -9 while writing runtime_health.json

def test_kill9_while_writing_the_health_file_leaves_valid_json(hard_project, orchestrators, reliability):
    health = hard_project / ".oneiric_cache" / "runtime_health.json"
    reads = {"ok": 0, "bad": 0, "missing": 0}
    bad_samples: list[bytes] = []
    stop = threading.Event()

    def reader() -> None:  # a tight loop, as `health` (file view) or an operator's script reads it
        while not stop.is_set():
            try:
                data = health.read_bytes()
            except FileNotFoundError:
                reads["missing"] += 1
                continue
            try:
                record = json.loads(data)
                assert isinstance(record, dict) and "activity_state" in record
                reads["ok"] += 1
            except (ValueError, AssertionError):
                reads["bad"] += 1
                bad_samples.append(data[:200])

    rng = random.Random(1)
    kills = 0
    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        for _ in range(4):
            orch = start(hard_project)
            orchestrators.append(orch)
            time.sleep(0.3 + rng.random() * 0.4)  # supervisor ticks every 0.05 s: ~6-14 writes, then the kill
            orch.proc.send_signal(signal.SIGKILL)
            orch.proc.wait(5)
            kills += 1
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(5)
    final = json.loads(health.read_bytes())
    assert reads["bad"] == 0, bad_samples[:3]
    assert reads["ok"] > 1000 and final["pid"] == orch.proc.pid
    leftovers = sorted(p.name for p in health.parent.glob(".runtime_health.json.*.tmp"))
    reliability.set(injects="kill -9 of orchestrate at a random moment, 4 times, while its supervisor rewrites "
                            "runtime_health.json every 0.05 s; a reader parses the file in a tight loop",
                    must_hold="every read parses as the JSON health record (old or new), never partial",
                    figure=f"{reads['ok']:,} reads all valid across {kills} kills ({reads['bad']} invalid; "
                           f"{len(leftovers)} orphan temp files left by killed writers)",
                    reads=reads["ok"], invalid=reads["bad"], kills=kills, orphan_tmp=len(leftovers))


# ---------------------------------------------------------------- kill -9 in the middle of a workflow run

def test_kill9_mid_run_then_redelivery_resumes_from_completed_nodes(hard_project, orchestrators, tmp_path,
                                                                    reliability):
    fx = tmp_path / "fx.jsonl"
    msg = {"workflow": "slow3", "run_id": "kill9-1", "context": {"sleep_seconds": 0.5, "effects": str(fx)}}
    task = {"X-CloudTasks-TaskName": "projects/p/locations/l/queues/q/tasks/kill9-1",
            "X-CloudTasks-TaskRetryCount": "0"}
    first = start(hard_project)
    orchestrators.append(first)
    replies: list = []

    def send() -> None:
        try:
            replies.append(post(first.url, msg, headers=task, timeout=10))
        except OSError as exc:  # the server died under the request: no answer at all
            replies.append((None, repr(exc)))

    sender = threading.Thread(target=send)
    sender.start()
    # node a done (its effect written and checkpointed), node b sleeping: kill -9 now
    wait_until(lambda: [e["label"] for e in effects(fx)] == ["a"], timeout=10)
    wait_until(lambda: query(hard_project, "SELECT node_id FROM nodes WHERE run_id='kill9-1' AND status='succeeded'")
             == [("a",)], timeout=2)
    time.sleep(0.15)
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(5)
    sender.join(15)
    assert replies and replies[0][0] is None, replies  # the sender got no answer: Cloud Tasks would retry
    row = query(hard_project, "SELECT status, attempts FROM runs WHERE run_id='kill9-1'")
    assert row == [("running", 1)], row

    second = start(hard_project)
    orchestrators.append(second)
    code, body = post(second.url, msg, headers={**task, "X-CloudTasks-TaskRetryCount": "1"})
    assert code == 200, body
    assert body["attempts"] == 2 and set(body["result"]) == {"a", "b", "c"}
    labels = [e["label"] for e in effects(fx)]
    assert labels == ["a", "b", "c"], labels  # a ran once (resumed from its checkpoint), b and c once each
    # a third, duplicate delivery runs nothing
    code, body = post(second.url, msg, headers={**task, "X-CloudTasks-TaskRetryCount": "2"})
    assert code == 200 and body["deduplicated"] is True
    assert [e["label"] for e in effects(fx)] == ["a", "b", "c"]
    assert second.terminate() == 0
    reliability.set(injects="kill -9 of orchestrate while node b of a 3-node run sleeps (a completed), restart, "
                            "redelivery of the same task, then a duplicate",
                    must_hold="the redelivery resumes after a (not re-run), the run succeeds with attempts 2, each "
                              "node's side effect recorded exactly once; the duplicate runs nothing",
                    figure=f"effects {labels} after 1 kill + 2 redeliveries; attempts 2; 0 duplicated effects",
                    kills=1, duplicated_effects=0)


# ---------------------------------------------------------------- SQLite locked by another process

LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=1)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline and not sys.stdin.closed:
    time.sleep(0.05)
    if sys.stdin.readable():
        pass
db.execute("ROLLBACK")
"""


def test_activity_store_locked_by_another_process(hard_project, orchestrators, reliability):
    env = env_for(hard_project)
    made = oneiric("activity", "resume", "--domain", "*", "--key", "*", cwd=hard_project, env=env)
    assert made.returncode == 0, made.stderr
    orch = start(hard_project)  # a running server next to the locked file
    orchestrators.append(orch)
    health = hard_project / ".oneiric_cache" / "runtime_health.json"
    store = hard_project / ".oneiric_cache" / "domain_activity.sqlite"
    locker = subprocess.Popen([PYTHON, "-c", LOCKER, str(store), "20"], stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        written = json.loads(health.read_bytes())["written_at"]
        result = oneiric("activity", "pause", "--domain", "workflow", "--key", "ingest", cwd=hard_project, env=env,
                         timeout=30)
        # meanwhile the server kept serving and its supervisor kept ticking (WAL readers are not blocked)
        assert orch.get("/healthz")[0] == 200
        assert post(orch.url, {"workflow": "noop3", "run_id": "during-lock"})[0] == 200
        assert json.loads(health.read_bytes())["written_at"] != written
    finally:
        locker.kill()
        locker.wait(5)
    assert_clean_failure(result)
    assert "database is locked" in result.stderr and str(store.name) in result.stderr, result.stderr
    assert result.seconds >= 4.5, f"gave up after {result.seconds:.2f}s: no busy wait"
    assert result.seconds < 15
    after = oneiric("activity", "pause", "--domain", "workflow", "--key", "ingest", cwd=hard_project, env=env)
    assert after.returncode == 0, after.stderr  # the lock gone, the same command works
    message = result.stderr.strip().splitlines()[-1]
    reliability.set(injects="an exclusive transaction held on domain_activity.sqlite by a second process during "
                            "`activity pause`",
                    must_hold="waits its busy timeout, then exit 1 with a clear error, no traceback; works once "
                              "the lock is gone; a running server keeps answering and its supervisor keeps ticking",
                    figure=f"exit {result.returncode} after {result.seconds:.1f} s: "
                           f"{message.split('.oneiric_cache/')[-1][:110]}",
                    seconds=round(result.seconds, 2))


# ---------------------------------------------------------------- build/ full or read-only

def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_compile_into_a_full_or_read_only_build_dir(hard_build, tmp_path, fault, reliability):
    project = tmp_path / "project"
    shutil.copytree(hard_build, project, ignore=shutil.ignore_patterns(".oneiric_cache", "build"))
    build = project / "build"
    old = {p.name: p.read_bytes() for p in (hard_build / "build").iterdir()}
    pages = sum(-(-len(b) // 4096) for b in old.values())
    if not _mount_tmpfs(build, f"{(pages + 16) * 4096}"):
        pytest.skip("cannot mount a tmpfs here (needs root): the read-only/full fault cannot be made real")
    try:
        for name, data in old.items():
            (build / name).write_bytes(data)
        if fault == "full":
            fd = os.open(build / "filler", os.O_WRONLY | os.O_CREAT)  # take every remaining block
            try:
                while os.write(fd, b"\0" * 4096):
                    pass
            except OSError:
                pass
            finally:
                os.close(fd)
        else:
            assert subprocess.run(["mount", "-o", "remount,ro", str(build)], capture_output=True).returncode == 0
        settings = project / "config" / "hard.toml"
        settings.write_text(settings.read_text().replace("max_body_bytes = 65536", "max_body_bytes = 65537"))
        result = oneiric("compile", "--project-dir", str(project), cwd=project)
        assert_clean_failure(result)
        expected = "No space left on device" if fault == "full" else "Read-only file system"
        assert expected in result.stderr and "previous artifacts are intact" in result.stderr, result.stderr
        assert {p.name: p.read_bytes() for p in build.iterdir() if p.name != "filler"} == old
        check = oneiric("compile", "--project-dir", str(project), "--check", cwd=project)
        assert check.returncode == 1 and "is stale" in check.stderr  # the operator is told, nothing half-written
    finally:
        _umount(build)
    reliability.set(injects=f"`oneiric compile` into build/ on a {'full' if fault == 'full' else 'read-only'} "
                            "tmpfs holding the previous artifacts",
                    must_hold="exit 1 with the OS reason, no traceback, previous artifacts byte-identical, no temp "
                              "files left; `compile --check` reports stale",
                    figure=f"exit {result.returncode} in {result.seconds:.2f} s: "
                           f"{result.stderr.strip().splitlines()[-1][:100]}")


# ---------------------------------------------------------------- Secret Manager UNAVAILABLE, then back

SM_SETTINGS_EXTRA = """
[secrets]
provider = "gcp.secret_manager"
project_id = "hardening"
cache_ttl_seconds = 1
emulator_host = "{host}"
"""


def test_secret_manager_unavailable_then_recovering(tmp_path, orchestrators, reliability):
    import grpc

    from tests.fakes.secretmanager import FakeSecretManager

    from .project import MANIFEST, SETTINGS, make_project

    with FakeSecretManager("hardening") as sm:
        sm.put("tasks-hmac-key", HMAC_KEY)
        settings = SETTINGS.replace('[secrets]\nprovider = "env"\n', SM_SETTINGS_EXTRA.format(host=sm.host))
        root = make_project(tmp_path / "smproject", settings, MANIFEST)
        tally = {"outage_cold": {}, "outage_warm": {}, "recovered": {}}
        accepted: list[str] = []
        n = iter(range(10 ** 6))

        def deliver(phase: str) -> int:
            run_id = f"sm-{next(n)}"
            code, body = post(orch.url, {"workflow": "noop3", "run_id": run_id})
            tally[phase][code] = tally[phase].get(code, 0) + 1
            assert body.get("error") != "internal", body
            if code == 200:
                accepted.append(run_id)
            return code

        # 1. down at cold start: the server starts and refuses deliveries (no key), nothing is run
        sm.fail(grpc.StatusCode.UNAVAILABLE)
        orch = start(root)
        orchestrators.append(orch)
        for _ in range(5):  # 503 + Retry-After: the sender retries; not a 401 (it did nothing wrong)
            assert deliver("outage_cold") == 503
        probe = oneiric("health", "--probe", "--json", cwd=root, env=env_for(root))
        assert probe.returncode == 1 and json.loads(probe.stdout)["secrets"]["status"] == "error"
        # 2. back: it heals by itself, no restart
        sm.clear_faults()
        wait_until(lambda: deliver("recovered") == 200, timeout=10, interval=0.2)
        # 3. down again while running: the cached key (expired after 1 s) keeps being served
        sm.fail(grpc.StatusCode.UNAVAILABLE)
        time.sleep(1.2)
        for _ in range(10):
            assert deliver("outage_warm") == 200
        sm.clear_faults()
        for _ in range(5):
            assert deliver("recovered") == 200
        assert orch.terminate() == 0
    stored = {r for (r,) in query(root, "SELECT run_id FROM runs WHERE status='succeeded'")}
    assert stored == set(accepted)  # every accepted run stored, nothing run without auth
    assert HMAC_KEY not in "\n".join(orch.lines) + orch.stderr
    fmt = lambda d: "/".join(f"{v}x{k}" for k, v in sorted(d.items()))  # noqa: E731
    reliability.set(injects="Secret Manager (gRPC fake) answering UNAVAILABLE at cold start, then recovering, "
                            "then UNAVAILABLE again while serving (HMAC key cache_ttl 1 s)",
                    must_hold="no delivery accepted without the key: 503 (not 401, not 500); heals without a restart; during a "
                              "later outage the cached key is served; every 200 run stored; key never logged",
                    figure=f"cold outage {fmt(tally['outage_cold'])}, warm outage {fmt(tally['outage_warm'])}, "
                           f"recovered {fmt(tally['recovered'])}; {len(accepted)} accepted = {len(stored)} stored",
                    accepted=len(accepted), stored=len(stored))


# ---------------------------------------------------------------- Cloud Tasks duplicates, out-of-order retries

def test_cloud_tasks_duplicates_and_out_of_order_retries_run_each_run_once(hard_project, orchestrators, tmp_path,
                                                                           reliability):
    import grpc
    from gcloud_tasks_emulator.server import create_server
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    from runtime.tasks_auth import sign

    from tests.support.env import free_port

    orch = start(hard_project)
    orchestrators.append(orch)
    port = free_port()
    server = create_server("127.0.0.1", port, max_retries=60)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    try:
        parent = "projects/hard/locations/l"
        queue = f"{parent}/queues/wf"
        wait_until(lambda: _try(lambda: client.create_queue(parent=parent, queue={"name": queue}, timeout=2)), 10, 0.2)
        rng = random.Random(3)
        runs = [f"ct-{i}" for i in range(12)]
        plan = []
        for run_id in runs:
            fx = tmp_path / f"{run_id}.jsonl"
            wf = "slow3" if run_id in runs[:4] else "ingest"
            ctx = {"effects": str(fx), "records": ["x"], "sleep_seconds": 0.15}
            copies = rng.randint(2, 4)  # duplicates: the same Cloud Tasks task name, each signed afresh
            plan += [(run_id, wf, ctx) for _ in range(copies)]
        rng.shuffle(plan)  # out of order: duplicates of one run interleave with other runs
        # paused first: every delivery gets 503 and the emulator retries them all, interleaved
        env = env_for(hard_project)
        for key in ("ingest", "slow3"):
            assert oneiric("activity", "pause", "--domain", "workflow", "--key", key, cwd=hard_project,
                           env=env).returncode == 0
        wait_until(lambda: post(orch.url, {"workflow": "ingest", "run_id": "probe"})[0] == 503, 5)
        for run_id, wf, ctx in plan:
            body = json.dumps({"workflow": wf, "run_id": run_id, "context": ctx}).encode()
            headers = {"Content-Type": "application/json", "X-Oneiric-Signature": sign(HMAC_KEY.encode(), body,
                                                                                      int(time.time()) - rng.randint(0, 60))}
            client.create_task(parent=queue, task={
                "name": f"{queue}/tasks/{run_id}",
                "http_request": {"http_method": "POST", "url": f"{orch.url}/tasks/workflow", "headers": headers,
                                 "body": body}}, timeout=5)

        time.sleep(1.0)
        for key in ("ingest", "slow3"):
            assert oneiric("activity", "resume", "--domain", "workflow", "--key", key, cwd=hard_project,
                           env=env).returncode == 0

        def settled() -> bool:
            done = query(hard_project, "SELECT COUNT(*) FROM runs WHERE status='succeeded'")
            return done and done[0][0] == len(runs)

        wait_until(settled, timeout=60, interval=0.2)
        time.sleep(1.0)  # let remaining duplicates and retries arrive
    finally:
        channel.close()
        server.stop()
    deliveries = [r for r in orch.records if r.get("message") == "workflow delivery" and r.get("run_id") != "probe"]
    codes: dict[int, int] = {}
    for r in deliveries:
        codes[r["http_status"]] = codes.get(r["http_status"], 0) + 1
    for run_id in runs:
        fx = effects(tmp_path / f"{run_id}.jsonl")
        labels = [e["label"] for e in fx]
        assert sorted(labels) == sorted(set(labels)) and len(labels) == 3, (run_id, labels)
    rows = query(hard_project, "SELECT run_id, status, attempts FROM runs")
    assert sorted(r[0] for r in rows) == sorted(runs) and all(r[1] == "succeeded" for r in rows)
    assert 500 not in codes and codes.get(503, 0) >= len(runs) and orch.terminate() == 0
    reliability.set(injects=f"{len(plan)} Cloud Tasks tasks through the emulator for {len(runs)} runs: 2-4 "
                            "copies of each task name, shuffled, signed at different times; the workflows paused for 1 s so "
                            "every delivery is refused (503) and retried by the emulator, interleaved, then resumed",
                    must_hold="each run runs once: 3 node effects per run, no duplicates; every run succeeded",
                    figure=f"{len(deliveries)} deliveries (" + ", ".join(f"{k}: {v}" for k, v in sorted(codes.items()))
                           + f") -> {len(runs)} runs, each node effect exactly once",
                    deliveries=len(deliveries), runs=len(runs))


def _try(fn) -> bool:
    try:
        fn()
        return True
    except Exception:
        return False


def test_token_key_server_unreachable_is_503_not_401(tmp_path, reliability):
    """The OIDC signing keys cannot be fetched (Google's JWKS URL down): an outage, answered 503 + Retry-After
    like a Secret Manager outage for the HMAC key, never 401 and never a run."""
    from runtime.workflows.endpoint import handle_delivery
    from runtime.workflows.service import stop
    from tests.support.fake_runtime import FakeRuntime

    from tests.support.env import free_port

    closed = free_port()  # nothing listens there
    rt = FakeRuntime(tmp_path, http={"tasks_auth": "oidc", "oidc_audience": "https://a.example/tasks/workflow",
                                     "oidc_service_account": "sa@p.iam.gserviceaccount.com",
                                     "oidc_certs_url": f"http://127.0.0.1:{closed}/certs"})
    token = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJhdWQiOiJ4In0.c2ln"
    try:
        status, body, headers = handle_delivery(rt, b'{"workflow": "ingest"}', {"Authorization": f"Bearer {token}"})
    finally:
        stop(rt)
    assert (status, body["error"]) == (503, "auth_unavailable") and int(headers["Retry-After"]) > 0, body
    reliability.set(injects="OIDC delivery while the token signing key URL refuses connections",
                    must_hold="503 auth_unavailable with Retry-After (the sender retries), no run",
                    figure=f"{status} {body['error']}: {body['detail']}")
