"""The shared backend: PostgreSQL 14+ (Cloud SQL or any server) through psycopg 3 and a psycopg-pool pool.

Imported only when `[state] backend = "postgres"` (psycopg costs about 250 ms to import, so the
runtime imports and connects from a background thread while `/healthz` answers 503 starting).
Connections are autocommit; a write transaction is `conn.transaction()`. Statements arrive with `?`
placeholders (the store's shared dialect) and are rewritten to `%s` once each. Every instance of a
deployment sees the same runs, leases, dead letters and activity rows.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from runtime.state import schema
from runtime.state.store import Database, StateError

#: the advisory lock key that serialises migrations between instances starting together
_MIGRATION_LOCK = 0x6F6E6569  # "onei"


def describe(dsn: str) -> str:
    """host:port/dbname of a DSN, for messages (never the password)."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "postgres (unparsable DSN)"
    host = parts.get("host") or "localhost"
    return f"postgres://{host}:{parts.get('port') or 5432}/{parts.get('dbname') or parts.get('user') or ''}"


class PostgresDatabase(Database):
    dialect = "postgres"
    integrity_errors = (psycopg.IntegrityError,)
    errors = (psycopg.Error,)

    def __init__(self, dsn: str, *, pool_size: int = 8, connect_timeout: float = 10.0) -> None:
        self.location = describe(dsn)
        self._timeout = connect_timeout
        self._sql: dict[str, str] = {}
        self._sql_lock = threading.Lock()
        self.pool = ConnectionPool(dsn, min_size=1, max_size=pool_size, open=False, timeout=connect_timeout,
                                   name="oneiric-state",
                                   kwargs={"autocommit": True, "connect_timeout": max(1, int(connect_timeout))})
        try:
            self.pool.open(wait=True, timeout=connect_timeout)
        except psycopg.Error as exc:
            self.pool.close()
            raise StateError(f"state store {self.location}: cannot connect within {connect_timeout:g} s: "
                             f"{exc}") from None

    def _native(self, sql: str) -> str:
        native = self._sql.get(sql)
        if native is None:
            native = self._sql[sql] = sql.replace("?", "%s")
        return native

    def execute(self, sql: str, args: tuple = ()) -> tuple[list[tuple], int]:
        with self.pool.connection() as conn:
            cur = conn.execute(self._native(sql), args)
            return (cur.fetchall() if cur.description else []), cur.rowcount

    @contextmanager
    def transaction(self) -> Iterator[Callable[..., tuple[list[tuple], int]]]:
        with self.pool.connection() as conn, conn.transaction():
            cur = conn.cursor()

            def execute(sql: str, args: tuple = ()) -> tuple[list[tuple], int]:
                cur.execute(self._native(sql), args)
                return (cur.fetchall() if cur.description else []), cur.rowcount

            yield execute

    def migrate(self) -> list[int]:
        with self.transaction() as execute:
            execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
            has_table = lambda name: execute("SELECT to_regclass(?)", (name,))[0][0][0] is not None  # noqa: E731
            todo = schema.pending(self.dialect, execute, has_table)
            if todo:
                has_column = lambda table, column: bool(execute(  # noqa: E731
                    "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
                    " AND table_name=? AND column_name=?", (table, column))[0])
                schema.apply(self.dialect, execute, todo, has_column, time.time())
        return todo

    def close(self) -> None:
        self.pool.close()


def open_database(dsn: str, *, pool_size: int = 8, connect_timeout: float = 10.0,
                  migrate: bool = True) -> PostgresDatabase:
    db = PostgresDatabase(dsn, pool_size=pool_size, connect_timeout=connect_timeout)
    if migrate:
        try:
            db.migrate()
        except psycopg.Error as exc:
            db.close()
            raise StateError(f"state store {db.location}: migration failed: {exc}") from None
    return db
