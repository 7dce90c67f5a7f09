"""The state store on both backends (a real SQLite file, a real PostgreSQL server): claims, leases and
fencing between two store instances on one database, checkpoints, dead letters, retention, migrations."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from runtime.state import LeaseLost, RunConflictError, StateConfig, StateError, open_store
from runtime.state import schema

from .conftest import make_store


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_claim_is_idempotent_per_run_and_conflicts_are_refused(store_factory):
    store = store_factory()
    c1 = store.claim(workflow="w", run_id="r1", task_name="t1", context={"x": 1})
    assert (c1.outcome, c1.created, c1.run.attempts, c1.run.generation) == ("claimed", True, 1, 1)
    assert store.claim(workflow="w", run_id="r1", task_name=None, context={}).outcome == "busy"
    with pytest.raises(RunConflictError, match="task name t1"):  # a reused task name with another run id
        store.claim(workflow="w", run_id="other-id", task_name="t1", context={})
    with pytest.raises(RunConflictError, match="belongs to workflow"):
        store.claim(workflow="other", run_id="r1", task_name=None, context={})
    store.record_node("r1", "a", status="succeeded", attempts=1, output={"v": 1})
    store.finish("r1", status="failed", error="boom")
    c2 = store.claim(workflow="w", run_id="r1", task_name="t1", context={"ignored": True})
    assert (c2.outcome, c2.created, c2.run.attempts, c2.run.context) == ("claimed", False, 2, {"x": 1})
    assert store.completed_outputs("r1") == {"a": {"v": 1}}
    store.finish("r1", status="succeeded", result={"a": {"v": 1}})
    c3 = store.claim(workflow="w", run_id="r1", task_name="t1", context={})
    assert (c3.outcome, c3.run.result, c3.run.status) == ("completed", {"a": {"v": 1}}, "succeeded")


def test_many_checkpoints_and_a_repeated_node_are_all_committed(store_factory):
    """Checkpoints go to the database many rows per statement: past one statement's worth (100 rows), and
    a node checkpointed twice before a flush (its attempts add up, as with one row at a time)."""
    store = store_factory(checkpoint_interval=3600)  # no background flush: this test flushes
    runs = [f"r{i}" for i in range(3)]
    for run_id in runs:
        store.claim(workflow="w", run_id=run_id, task_name=None, context={})
        for n in range(50):
            store.record_node(run_id, f"n{n}", status="succeeded", attempts=1, output={"n": n})
    store.record_node("r0", "n0", status="succeeded", attempts=2, output={"n": "again"})
    assert store.flush() == 151
    assert [len(store.nodes(r)) for r in runs] == [50, 50, 50]
    first = next(n for n in store.nodes("r0") if n.node_id == "n0")
    assert (first.attempts, first.output) == (3, {"n": "again"})
    store.record_node("r1", "n50", status="succeeded", attempts=1, output={"n": 50})
    store.finish("r1", status="succeeded", result={}, node={"node_id": "last", "status": "succeeded",
                                                            "attempts": 1, "output": {"last": True}})
    assert store.completed_outputs("r1")["n50"] == {"n": 50} and store.completed_outputs("r1")["last"] == {"last": True}
    assert store.get("r1").status == "succeeded"


def test_two_instances_claiming_the_same_run_at_once_get_one_claim(store_factory):
    stores = [store_factory(), store_factory()]
    outcomes: list[str] = []
    barrier = threading.Barrier(16)

    def claim(i: int) -> None:
        barrier.wait()
        outcomes.append(stores[i % 2].claim(workflow="w", run_id="same", task_name=None, context={}).outcome)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["busy"] * 15 + ["claimed"]


def test_an_expired_lease_moves_the_run_and_fences_the_old_owner(store_factory):
    clock = Clock()
    first = store_factory(section={"lease_seconds": 5}, clock=clock)
    second = store_factory(section={"lease_seconds": 5}, clock=clock)
    assert first.claim(workflow="w", run_id="r", task_name=None, context={}).outcome == "claimed"
    first.record_node("r", "a", status="succeeded", attempts=1, output=1)
    first.flush()
    assert second.claim(workflow="w", run_id="r", task_name=None, context={}).outcome == "busy"
    clock.now += 6  # the first owner stopped renewing (a frozen process): its lease expired
    taken = second.claim(workflow="w", run_id="r", task_name=None, context={})
    assert (taken.outcome, taken.run.generation, taken.run.attempts) == ("claimed", 2, 2)
    assert second.completed_outputs("r") == {"a": 1}  # the checkpoint survives the owner change
    # the old owner wakes up: none of its writes land
    first.record_node("r", "c", status="succeeded", attempts=1, output="late")  # pending: dropped at flush
    assert first.flush() == 0
    with pytest.raises(LeaseLost):
        first.record_node("r", "b", status="failed", attempts=1, error="late")
    with pytest.raises(LeaseLost):
        first.finish("r", status="succeeded", result={"late": True})
    assert first.renew() == [] and not first.owns("r")
    assert [n.node_id for n in second.nodes("r")] == ["a"]
    second.finish("r", status="succeeded", result={"a": 1})
    run = second.get("r")
    assert (run.status, run.result, run.generation) == ("succeeded", {"a": 1}, 2)


def test_the_heartbeat_keeps_a_long_run_owned(store_factory):
    first = store_factory(section={"lease_seconds": 2})
    second = store_factory(section={"lease_seconds": 2})
    assert first.claim(workflow="w", run_id="long", task_name=None, context={}).outcome == "claimed"
    deadline = time.time() + 3.5  # well past the 2 s lease, renewed every 2/3 s
    while time.time() < deadline:
        assert second.claim(workflow="w", run_id="long", task_name=None, context={}).outcome == "busy"
        time.sleep(0.25)
    first.finish("long", status="succeeded", result={})
    assert second.get("long").status == "succeeded"


def test_release_frees_the_run_for_any_instance_at_once(store_factory):
    first, second = store_factory(), store_factory()
    first.claim(workflow="w", run_id="r", task_name=None, context={})
    first.release("r")
    claim = second.claim(workflow="w", run_id="r", task_name=None, context={})
    assert (claim.outcome, claim.run.attempts) == ("claimed", 2)


def test_dead_letters_are_counted_and_their_run_never_runs_again(store_factory):
    store = store_factory()
    store.claim(workflow="w", run_id="r", task_name="t", context={})
    dl = store.record_dead_letter(key="t", reason="rejected", detail="bad context", workflow="w", run_id="r",
                                  task_name="t")
    assert (dl.reason, dl.deliveries) == ("rejected", 1)
    assert store.record_dead_letter(key="t", reason="rejected", detail="again").deliveries == 2
    assert store.claim(workflow="w", run_id="r", task_name="t", context={}).outcome == "dead"
    assert [d.key for d in store.dead_letters()] == ["t"] and store.count_dead_letters() == 1


def test_enqueued_records_and_activity_rows(store_factory):
    store = store_factory()
    record = {"task_name": "t1", "workflow": "w", "run_id": "r1", "queue_category": "queue",
              "queue_provider": "local", "queued_at": "2024-01-01T00:00:00.000000Z"}
    assert store.record_enqueued(record) is True
    assert store.record_enqueued(record) is False
    assert store.enqueued("t1") == record and store.enqueued("nope") is None
    store.set_activity("*", "*", "paused", "maintenance", "2024-01-01T00:00:00Z", "cli:test")
    store.set_activity("*", "*", "active", None, "2024-01-01T00:01:00Z", "cli:test")
    assert store.activity_rows() == [("*", "*", "active", None, "2024-01-01T00:01:00Z", "cli:test")]


def test_retention_prunes_finished_rows_in_batches_and_keeps_running_ones(store_factory):
    clock = Clock()
    store = store_factory(clock=clock)
    for i in range(7):
        store.claim(workflow="w", run_id=f"old{i}", task_name=None, context={})
        store.record_node(f"old{i}", "a", status="failed", attempts=1, error="x")
        store.finish(f"old{i}", status="succeeded" if i % 2 else "failed", result={})
    store.claim(workflow="w", run_id="still-running", task_name=None, context={})
    store.record_dead_letter(key="dl-old", reason="r", detail="d")
    store.record_enqueued({"task_name": "q-old", "workflow": "w", "run_id": "x", "queue_category": "q",
                           "queue_provider": "local", "queued_at": "t"})
    clock.now += 10 * 86400
    store.claim(workflow="w", run_id="new", task_name=None, context={})
    store.finish("new", status="succeeded", result={})
    store.record_dead_letter(key="dl-new", reason="r", detail="d")
    counts = store.prune(5 * 86400, batch=3)
    assert counts == {"runs": 7, "dead_letters": 1, "enqueued": 1}
    assert sorted(r.run_id for r in store.list_runs()) == ["new", "still-running"]
    assert store.nodes("old1") == [] and [d.key for d in store.dead_letters()] == ["dl-new"]


def test_migrations_are_recorded_and_run_once(backend, store_factory):
    store = store_factory()
    assert store.db.migrate() == []  # a second instance starting finds nothing to do
    rows, _ = store.db.execute("SELECT version FROM schema_version ORDER BY version")
    assert [r[0] for r in rows] == sorted(schema.MIGRATIONS) and schema.VERSION == max(schema.MIGRATIONS)
    assert store.check()["status"] == "ready"


def test_a_run_store_written_before_versioning_is_migrated_in_place(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    legacy = sqlite3.connect(cache / "workflow_runs.sqlite")
    for sql in schema.statements("sqlite", 1):
        legacy.execute(sql)
    legacy.execute("CREATE TABLE used_signatures (token TEXT PRIMARY KEY, t REAL NOT NULL)")
    legacy.execute("INSERT INTO runs (run_id, workflow, status, attempts, created_at, updated_at, result, context)"
                   " VALUES ('old', 'w', 'succeeded', 1, 1, 1, '{\"ok\":true}', '{}')")
    legacy.commit()
    legacy.close()
    store = make_store("sqlite", tmp_path)
    try:
        claim = store.claim(workflow="w", run_id="old", task_name=None, context={})
        assert (claim.outcome, claim.run.result, claim.run.generation) == ("completed", {"ok": True}, 1)
        tables = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type='table'")[0]}
        assert "used_signatures" not in tables and {"dead_letters", "activity", "schema_version"} <= tables
    finally:
        store.close()


def test_an_unreachable_or_corrupt_store_is_a_state_error_naming_it(tmp_path, pg_server):
    with pytest.raises(StateError, match=r"postgres://127\.0\.0\.1:1/nope.*cannot connect"):
        open_store(StateConfig({"backend": "postgres", "dsn": "secret://d", "connect_timeout_seconds": 1}),
                   cache_dir=tmp_path, resolve=lambda ref: "postgresql://postgres:hunter2@127.0.0.1:1/nope")
    cache = tmp_path / "corrupt"
    cache.mkdir()
    (cache / "workflow_runs.sqlite").write_bytes(b"this is not a database" * 200)
    with pytest.raises(StateError, match="workflow_runs.sqlite"):
        open_store(StateConfig({}), cache_dir=cache)


@pytest.mark.parametrize("section, message", [
    ({"backend": "mysql"}, "not one of"),
    ({"backend": "postgres"}, "secret://"),
    ({"backend": "postgres", "dsn": "postgresql://u:p@h/db"}, "secret://"),
    ({"retention_days": 0}, "retention_days"),
    ({"lease_seconds": 1e9}, "lease_seconds"),
    ({"pool_size": True}, "pool_size"),
])
def test_state_settings_are_bounds_checked(section, message):
    with pytest.raises(StateError, match=message):
        StateConfig(section)


def test_a_run_whose_end_cannot_be_written_releases_its_lease(tmp_path, pg_dsn):
    """The database refuses the end's writes (a trigger raising, as a full disk would): the run is given up at
    once (`interrupted`, no owner), so a redelivery on any instance resumes it instead of waiting for the lease."""
    import psycopg

    first = make_store("postgres", tmp_path, pg_dsn, section={"lease_seconds": 600})
    second = make_store("postgres", tmp_path, pg_dsn, section={"lease_seconds": 600})
    try:
        assert first.claim(workflow="w", run_id="r", task_name=None, context={}).outcome == "claimed"
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION"
                         " 'could not extend file: No space left on device'; END $$ LANGUAGE plpgsql")
            conn.execute("CREATE TRIGGER full_disk BEFORE INSERT OR UPDATE ON nodes FOR EACH ROW EXECUTE FUNCTION refuse()")
        with pytest.raises(StateError, match="No space left on device"):
            first.finish("r", status="succeeded", result={}, node={"node_id": "a", "status": "succeeded",
                                                                   "attempts": 1, "output": 1})
        run = second.get("r")
        assert (run.status, run.owner, run.lease_until) == ("interrupted", None, None)
        claim = second.claim(workflow="w", run_id="r", task_name=None, context={})
        assert (claim.outcome, claim.run.attempts) == ("claimed", 2)  # no 600 s wait for the lease
    finally:
        first.close()
        second.close()
