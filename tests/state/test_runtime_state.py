"""The state store inside a running `orchestrate`: pause/drain shared through PostgreSQL, store failures
visible on /healthz and in `health`, a corrupt activity store failing closed, retention by the
supervisor, dead letters listed by `workflow list --dead`."""

from __future__ import annotations

import json
import time

import pytest

from tests.support.cli import run_cli
from tests.support.env import wait_until

from .project import POSTGRES, env_for, make_project, pg_rows, post, start



@pytest.fixture
def orchestrators():
    made = []
    yield made
    for inst in made:
        inst.close()


def test_serverless_profile_two_instances_share_pause_resume_and_dead_letters(tmp_path, pg_dsn, orchestrators):
    root = make_project(tmp_path / "p", POSTGRES.format(lease=30))
    env = env_for(root, pg_dsn)
    a, b = start(root, env), start(root, env)
    orchestrators += [a, b]
    for inst in (a, b):
        assert post(inst.url, {"workflow": "noop3", "run_id": f"before-{inst.port}"})[0] == 200
    out = run_cli(*["activity", "pause", "--domain", "workflow", "--key", "noop3", "--note", "db upgrade", "--json"],
                  cwd=root, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["store"].startswith("postgres://127.0.0.1:")
    paused_at = time.monotonic()
    probes = iter(range(10000))
    for inst in (a, b):  # both instances poll the same rows (poll_interval 0.2 s)
        wait_until(lambda: post(inst.url, {"workflow": "noop3", "run_id": f"probe-{next(probes)}"})[0] == 503, 5)
    both_paused_after = time.monotonic() - paused_at
    for inst in (a, b):  # paused: answered 503, nothing stored
        code, body = post(inst.url, {"workflow": "noop3", "run_id": f"held-{inst.port}"})
        assert (code, body["error"]) == (503, "paused")
    assert pg_rows(pg_dsn, "SELECT COUNT(*) FROM runs WHERE left(run_id, 5) = 'held-'") == [(0,)]
    out = run_cli(*["activity", "--json"], cwd=root, env=env, timeout=60)
    assert out.returncode == 0 and json.loads(out.stdout)["entries"][0]["note"] == "db upgrade", out.stderr
    assert run_cli(*["activity", "resume", "--domain", "workflow", "--key", "noop3"], cwd=root, env=env,
                   timeout=60).returncode == 0
    for inst in (a, b):
        wait_until(lambda: post(inst.url, {"workflow": "noop3", "run_id": f"probe-{next(probes)}"})[0] == 200, 5)
    # a poison delivery on A is listed by the CLI from the shared store
    code, body = post(a.url, {"workflow": "no-such-workflow"}, headers={"X-CloudTasks-TaskName": "poison-1"})
    assert (code, body["status"]) == (200, "dead_letter")
    out = run_cli(*["workflow", "list", "--dead", "--json"], cwd=root, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert [(d["key"], d["reason"]) for d in json.loads(out.stdout)] == [("poison-1", "unknown_workflow")]
    health = wait_until(lambda: (lambda r: r if (r.get("state") or {}).get("dead_letters") == 1 else None)(
        json.loads((root / ".oneiric_cache" / "runtime_health.json").read_text())), 5)
    assert health["state"]["backend"] == "postgres" and health["state"]["status"] == "ready"
    print(f"both instances paused {both_paused_after:.2f} s after the CLI returned (poll interval 0.2 s)")


def test_an_unreachable_postgres_is_503_on_healthz_and_unhealthy_in_health(tmp_path, orchestrators):
    root = make_project(tmp_path / "p", POSTGRES.format(lease=30) + "connect_timeout_seconds = 1\n")
    env = env_for(root, "postgresql://app:hunter2@127.0.0.1:1/none")
    inst = start(root, env, healthy=False)
    orchestrators.append(inst)
    code, _, body = wait_until(lambda: (lambda r: r if r[2].get("status") == "unavailable" else None)(
        inst.get("/healthz")), 10)
    assert code == 503 and body["reason"] == "state store unavailable" and "127.0.0.1:1/none" in body["detail"]
    assert "hunter2" not in json.dumps(body)
    record = inst.wait_log("state store unavailable", 10)
    assert record["severity"] == "ERROR" and "hunter2" not in json.dumps(record)
    code, body = post(inst.url, {"workflow": "noop3", "run_id": "r1"})
    assert (code, body["error"]) == (503, "state_unavailable")
    health_file = root / ".oneiric_cache" / "runtime_health.json"  # rewritten by every supervisor tick
    wait_until(lambda: (json.loads(health_file.read_text()).get("state") or {}).get("status") == "error", 10)
    out = run_cli(*["health", "--json"], cwd=root, env=env, timeout=60)
    report = json.loads(out.stdout)
    assert out.returncode == 1 and report["status"] == "unhealthy" and report["state"]["status"] == "error"
    assert "127.0.0.1:1/none" in report["state"]["detail"] and "hunter2" not in out.stdout


def test_a_corrupt_run_store_is_503_on_healthz(tmp_path, orchestrators):
    root = make_project(tmp_path / "p")
    cache = root / ".oneiric_cache"
    cache.mkdir(exist_ok=True)
    (cache / "workflow_runs.sqlite").write_bytes(b"this is not a database" * 500)
    inst = start(root, env_for(root), healthy=False)
    orchestrators.append(inst)
    code, _, body = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(inst.get("/healthz")), 10)
    assert body["reason"] == "state store unavailable" and "workflow_runs.sqlite" in body["detail"]
    code, body = post(inst.url, {"workflow": "noop3", "run_id": "r1"})
    assert (code, body["error"]) == (503, "state_unavailable")


def test_a_corrupt_activity_store_fails_closed(tmp_path, orchestrators):
    root = make_project(tmp_path / "p")
    cache = root / ".oneiric_cache"
    cache.mkdir(exist_ok=True)
    (cache / "domain_activity.sqlite").write_bytes(b"garbage, not sqlite" * 500)
    inst = start(root, env_for(root), healthy=False)
    orchestrators.append(inst)
    record = inst.wait_log("activity store unreadable: paused until it is readable (fail closed)", 10)
    assert record["severity"] == "ERROR" and "domain_activity.sqlite" in record["error"]
    code, _, body = inst.get("/healthz")
    assert (code, body["status"]) == (503, "paused")
    assert post(inst.url, {"workflow": "noop3", "run_id": "r1"})[0] == 503


def test_the_supervisor_prunes_runs_past_retention(tmp_path, pg_dsn, orchestrators):
    root = make_project(tmp_path / "p", POSTGRES.format(lease=30) + "retention_days = 1\n")
    env = env_for(root, pg_dsn)
    assert run_cli(*["state", "migrate"], cwd=root, env=env, timeout=60).returncode == 0
    old = time.time() - 3 * 86400
    import psycopg

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for i in range(1200):  # more than one 500-row batch
            conn.execute("INSERT INTO runs (run_id, workflow, status, attempts, created_at, updated_at, context,"
                         " generation) VALUES (%s, 'noop3', 'succeeded', 1, %s, %s, '{}', 1)", (f"old-{i}", old, old))
        conn.execute("INSERT INTO runs (run_id, workflow, status, attempts, created_at, updated_at, context,"
                     " generation) VALUES ('recent', 'noop3', 'succeeded', 1, %s, %s, '{}', 1)",
                     (time.time(), time.time()))
    inst = start(root, env)
    orchestrators.append(inst)
    record = inst.wait_log("state store pruned", 15)
    assert record["runs"] == 1200
    assert pg_rows(pg_dsn, "SELECT run_id FROM runs") == [("recent",)]
