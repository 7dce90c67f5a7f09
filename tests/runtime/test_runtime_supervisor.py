"""Service Supervisor: the activity store, scheduled windows, and their effect on a live server."""

from __future__ import annotations

import calendar
import json
import sqlite3
import threading
import time

import pytest

from runtime.activity import ActivityStore
from runtime.supervisor import Rule, Snapshot, Supervisor, evaluate, window_active
from tests.support.cli import run_cli
from tests.support.env import clean_env, wait_until

POLL = 0.2


def _at(day: int, hour: int, minute: int) -> time.struct_time:
    """A UTC struct_time on weekday `day` (0 = Monday) of the week of 2026-01-05 (a Monday)."""
    return time.gmtime(calendar.timegm((2026, 1, 5 + day, hour, minute, 0)))


def test_window_same_day_and_days_filter():
    window = {"action": "pause", "start": "09:00", "end": "10:30", "days": ["mon"]}
    assert window_active(window, _at(0, 9, 0))
    assert window_active(window, _at(0, 10, 29))
    assert not window_active(window, _at(0, 10, 30))
    assert not window_active(window, _at(1, 9, 30))  # tuesday


def test_window_across_midnight_belongs_to_its_start_day():
    window = {"action": "drain", "start": "23:00", "end": "01:00", "days": ["fri"]}
    assert window_active(window, _at(4, 23, 30))  # friday night
    assert window_active(window, _at(5, 0, 59))  # saturday early: friday's window
    assert not window_active(window, _at(5, 23, 30))
    assert not window_active(window, _at(4, 0, 30))  # friday early belongs to thursday


def test_window_equal_bounds_is_whole_day():
    assert window_active({"action": "pause", "start": "00:00", "end": "00:00"}, _at(3, 12, 0))


def test_snapshot_most_specific_record_wins_and_windows_apply_on_top():
    snap = Snapshot(records=(Rule("workflow", "*", "paused", "activity"), Rule("workflow", "ingest", "active", "activity")))
    assert snap.state_for("workflow", "ingest") is None
    assert snap.state_for("workflow", "other") == "paused"
    assert snap.state_for("task", "x") is None and snap.global_state is None
    drained = Snapshot(records=snap.records, windows=(Rule("*", "*", "draining", "window"),))
    assert drained.state_for("workflow", "ingest") == "draining" and drained.global_state == "draining"


def test_activity_store_is_wal_with_audit_columns(tmp_path):
    store = ActivityStore(tmp_path / "cache" / "domain_activity.sqlite")
    assert store.records() == [] and not store.path.exists()  # reading never creates
    store.set("workflow", "ingest", "paused", note="backfill", updated_by="cli:ops")
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    columns = [row[1] for row in conn.execute("PRAGMA table_info(domain_activity)")]
    assert columns == ["domain", "key", "state", "note", "updated_at", "updated_by"]
    conn.close()
    (record,) = store.records()
    assert (record.state, record.note, record.updated_by) == ("paused", "backfill", "cli:ops")


def test_activity_store_concurrent_writers_and_reader(tmp_path):
    store = ActivityStore(tmp_path / "domain_activity.sqlite")
    store.ensure()
    errors = []

    def writer(n: int) -> None:
        try:
            for i in range(20):
                ActivityStore(store.path).set("task", f"k{n}", "paused" if i % 2 else "draining")
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for _ in range(20):
        store.records()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r.key for r in store.records()) == ["k0", "k1", "k2", "k3"]


def test_supervisor_thread_ticks_and_survives_errors():
    calls = []

    def tick() -> None:
        calls.append(time.monotonic())
        if len(calls) == 2:
            raise OSError("disk full")

    logged = []
    with Supervisor(tick, 0.05, lambda *a, **k: logged.append(a)) as sup:
        wait_until(lambda: len(calls) >= 4, timeout=3)
    assert sup.status == "stopped" and logged and "supervisor tick failed" in logged[0][1]


def test_evaluate_keeps_previous_rows_when_store_is_unreadable(tmp_path):
    store = ActivityStore(tmp_path / "domain_activity.sqlite")
    store.set("*", "*", "paused")
    first = evaluate(store, [])
    (tmp_path / "domain_activity.sqlite").write_bytes(b"not a database" * 100)
    second = evaluate(ActivityStore(tmp_path / "domain_activity.sqlite"), [], first)
    assert second.global_state == "paused" and second.error


# ---------------------------------------------------------------- live

def _health(project):
    return json.loads((project / ".oneiric_cache" / "runtime_health.json").read_text())


def test_serverless_profile_pause_drain_resume_through_cli_while_serving(embedded_project, orchestrators):
    env = clean_env(ONEIRIC_PROFILE="serverless", ONEIRIC_SECRET_TASKS_HMAC_KEY="k")
    orch = orchestrators(embedded_project, ["orchestrate", "--profile", "serverless"], env).wait_ready()
    assert orch.get("/healthz")[0] == 200
    assert _health(embedded_project)["lifecycle_state"]["supervisor"]["poll_interval"] == POLL

    for action, state in (("pause", "paused"), ("drain", "draining")):
        result = run_cli("activity", action, "--domain", "*", "--key", "*", "--note", f"ops {action}", "--json",
                         cwd=embedded_project, env=env)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["state"] == state
        changed = time.monotonic()
        status, headers, body = wait_until(lambda: (r := orch.get("/healthz"))[0] == 503 and r[2]["status"] == state
                                           and r, timeout=3)
        file_state = wait_until(lambda: _health(embedded_project)["activity_state"] == state and _health(embedded_project),
                                timeout=3)
        assert time.monotonic() - changed < POLL * 2 + 0.8  # within one poll interval (plus scheduling slack)
        assert headers["Retry-After"] == "5"
        assert file_state["lifecycle_state"]["activity_state"] == state
        assert file_state["status"] == "degraded"
        (rule,) = file_state["lifecycle_state"]["rules"]
        assert rule["note"] == f"ops {action}" and rule["updated_by"].startswith("cli:")
        assert all(c["state"] == state for c in file_state["lifecycle_state"]["components"].values())

    listing = json.loads(run_cli("activity", "--json", cwd=embedded_project, env=env).stdout)
    assert listing["activity_state"] == "draining"
    assert listing["entries"][0]["note"] == "ops drain"
    assert listing["runtime_health"]["activity_state"] == "draining"
    assert listing["runtime_health"]["pid"] == orch.proc.pid

    run_cli("activity", "resume", "--domain", "*", "--key", "*", cwd=embedded_project, env=env)
    wait_until(lambda: orch.get("/healthz")[0] == 200, timeout=3)
    wait_until(lambda: _health(embedded_project)["activity_state"] == "accepting", timeout=3)
    assert orch.terminate() == 0


def test_serverless_profile_pausing_one_key_keeps_service_ready(embedded_project, orchestrators):
    env = clean_env(ONEIRIC_PROFILE="serverless", ONEIRIC_SECRET_TASKS_HMAC_KEY="k")
    orch = orchestrators(embedded_project, ["orchestrate", "--profile", "serverless"], env).wait_ready()
    run_cli("activity", "pause", "--domain", "workflow", "--key", "ingest", cwd=embedded_project, env=env)
    components = wait_until(lambda: (c := _health(embedded_project)["lifecycle_state"]["components"])
                            ["workflow/ingest"]["state"] == "paused" and c, timeout=3)
    assert components["adapter/queue"]["state"] == "active"
    assert orch.get("/healthz")[0] == 200
    assert orch.terminate() == 0


def test_serverless_profile_scheduled_window_drains_every_instance(embedded_project, orchestrators):
    """A window covering now (start == end: the whole day) drains without any shared state."""
    window = json.dumps([{"action": "drain", "start": "00:00", "end": "00:00", "note": "freeze"}])
    env = clean_env(ONEIRIC_SECRET_TASKS_HMAC_KEY="k", ONEIRIC_RUNTIME_SUPERVISOR__WINDOWS=window)
    first = orchestrators(embedded_project, ["orchestrate", "--profile", "serverless"], env).wait_ready()
    second = orchestrators(embedded_project, ["orchestrate", "--profile", "serverless", "--health-path",
                                              str(embedded_project / "second.json")], env).wait_ready()
    for orch in (first, second):
        status, _, body = orch.get("/healthz")
        assert (status, body["status"]) == (503, "draining")
    listing = json.loads(run_cli("activity", "--json",
                                 cwd=embedded_project, env=dict(env, ONEIRIC_PROFILE="serverless")).stdout)
    assert listing["windows"][0]["note"] == "freeze" and listing["activity_state"] == "draining"
    assert first.terminate() == 0 and second.terminate() == 0


def test_serverless_profile_pause_recorded_before_start_holds_from_first_request(embedded_project, orchestrators):
    env = clean_env(ONEIRIC_PROFILE="serverless", ONEIRIC_SECRET_TASKS_HMAC_KEY="k")
    assert run_cli("activity", "drain", "--domain", "*", "--key", "*", cwd=embedded_project, env=env).returncode == 0
    orch = orchestrators(embedded_project, ["orchestrate"], env).wait_ready()
    assert orch.wait_log("ready")["activity_state"] == "draining"
    status, _, body = orch.get("/healthz")
    assert (status, body["status"]) == (503, "draining")
    assert orch.terminate() == 0
