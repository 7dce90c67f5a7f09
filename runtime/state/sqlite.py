"""The embedded backend: one SQLite file under the cache dir (`workflow_runs.sqlite`, WAL).

One connection per process under a lock (no busy-waiting between this process's threads); other
processes on the same file (the CLI next to a server) wait on the busy timeout. Good for one
instance: the file is per machine, so on Cloud Run it is per instance and dies with it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from runtime.state import SQLITE_FILENAME, schema
from runtime.state.store import Database, StateError

FILENAME = SQLITE_FILENAME


class SqliteDatabase(Database):
    dialect = "sqlite"
    integrity_errors = (sqlite3.IntegrityError,)
    errors = (sqlite3.Error,)

    def __init__(self, path: Path | str, *, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), timeout=busy_timeout, isolation_level=None,
                                         check_same_thread=False)
            self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        except (sqlite3.Error, OSError) as exc:
            raise StateError(f"state store {self.path}: {exc}") from None

    def execute(self, sql: str, args: tuple = ()) -> tuple[list[tuple], int]:
        with self._lock:
            cur = self._conn.execute(sql, args)
            rows = cur.fetchall()
            return rows, cur.rowcount

    @contextmanager
    def transaction(self) -> Iterator[Callable[..., tuple[list[tuple], int]]]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._tx_execute
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _tx_execute(self, sql: str, args: tuple = ()) -> tuple[list[tuple], int]:
        cur = self._conn.execute(sql, args)
        return cur.fetchall(), cur.rowcount

    def migrate(self) -> list[int]:
        """Bring the schema to `schema.VERSION`; returns the versions applied."""
        with self.transaction() as execute:
            has_table = lambda name: bool(execute(  # noqa: E731
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,))[0])
            todo = schema.pending(self.dialect, execute, has_table)
            if todo:
                has_column = lambda table, column: any(  # noqa: E731
                    r[1] == column for r in execute(f"PRAGMA table_info({table})")[0])
                schema.apply(self.dialect, execute, todo, has_column, time.time())
        return todo

    def close(self) -> None:
        with self._lock:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass


def open_database(cache_dir: Path | str, *, migrate: bool = True) -> SqliteDatabase:
    db = SqliteDatabase(Path(cache_dir) / FILENAME)
    if migrate:
        try:
            db.migrate()
        except sqlite3.Error as exc:
            db.close()
            raise StateError(f"state store {db.path}: {exc}") from None
    return db
