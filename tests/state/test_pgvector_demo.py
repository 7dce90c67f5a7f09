"""The reference project's `pgvector` adapter (oneiric.demo.vector.PgVectorStore) against a real PostgreSQL server:
the demo `load` task's upserts land in the settings' table, once per key, from concurrent run threads.

The test server has no pgvector extension (the distribution's `postgresql` package does not ship it), so a
domain over `double precision[]` stands in for the `vector` type: the adapter's SQL (table creation, the upsert,
the casts it uses, which pgvector also defines) runs over the wire; pgvector's own code does not."""

from __future__ import annotations

import threading

import psycopg
import pytest

from oneiric.demo.tasks import load
from oneiric.demo.vector import PgVectorStore, embed
from runtime.adapters.base import AdapterError, SecretValue
from runtime.workflows.context import Adapters, TaskContext


def _with_vector_type(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE DOMAIN vector AS double precision[]")
    return dsn


def _store(dsn: str, **settings) -> PgVectorStore:
    store = PgVectorStore({"dsn": SecretValue(dsn), **settings})
    store.activate()
    return store


def test_upserts_are_one_row_per_key_in_the_settings_table(pg_dsn):
    dsn = _with_vector_type(pg_dsn)
    store = _store(dsn, table="reviews", dimensions=4)
    try:
        assert store.count() == 0  # the first use creates the table
        store.upsert("a", [0.5, -1.0, 0.25, 0.0])
        store.upsert("a", [1.0, 1.0, 1.0, 1.0])
        store.upsert("b", [0.0, 0.0, 0.0, 0.5])
        assert store.count() == 2 and store.get("a") == [1.0, 1.0, 1.0, 1.0] and store.get("missing") is None
        with pytest.raises(AdapterError, match="3 dimensions, expected 4"):
            store.upsert("c", [1.0, 2.0, 3.0])
        threads = [threading.Thread(target=store.upsert, args=(f"k{i % 10}", [float(i)] * 4)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert store.count() == 12
    finally:
        store.close()
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT COUNT(*) FROM reviews").fetchone() == (12,)


def test_the_demo_load_task_stores_each_record_through_the_adapter(pg_dsn):
    store = _store(_with_vector_type(pg_dsn), dimensions=8)
    try:
        context = TaskContext({}, run_id="r1", workflow="ingest", node="load", task="load", attempt=1,
                              adapters=Adapters({("adapter", "vector"): store}), log=lambda *a, **k: None)
        out = load({"target": "vector"}, context, {"transform": {"records": ["x", "y", "z"]}})
        assert out == {"loaded": 3, "target": "vector", "stored": 3}
        assert store.get("r1:y") == pytest.approx(embed("y", 8), abs=1e-6)  # stored as real[] precision
    finally:
        store.close()


def test_an_unreachable_database_is_an_adapter_error_without_the_password():
    store = _store("postgresql://app:s3cret-pw@127.0.0.1:1/vectors", dimensions=2)
    with pytest.raises(AdapterError, match="pgvector at 127.0.0.1") as failure:
        store.count()
    assert "s3cret-pw" not in str(failure.value)
    assert store.health()["status"] == "ready"  # cold start did no I/O; the failure is the query's


def test_a_dsn_that_is_not_a_postgres_url_is_refused_at_activation():
    with pytest.raises(AdapterError, match="postgresql:// URL"):
        _store("mysql://db/x")
