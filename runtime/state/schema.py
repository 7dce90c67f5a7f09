"""The state store's schema and its migrations, for both backends; `schema_version` records how far a
database got.

Each migration is a list of statements written once, with `{real}` / `{blob}` / `{norowid}` filled in
per dialect (SQLite `REAL` is 8 bytes, PostgreSQL's is 4: timestamps there are `DOUBLE PRECISION`).
Version 1 is the layout the SQLite run store had before the store was shared (so an existing
`workflow_runs.sqlite` is migrated in place); version 2 adds lease generations (fencing), dead letters,
activity rows, enqueue times and the indexes retention needs. `migrate(db)` applies what is missing in
one transaction, serialised between processes (SQLite `BEGIN IMMEDIATE`; PostgreSQL an advisory lock),
so instances starting together migrate once.
"""

from __future__ import annotations

from typing import Any, Callable

VERSION = 2

_TYPES = {
    "sqlite": {"real": "REAL", "blob": "BLOB", "norowid": " WITHOUT ROWID"},
    "postgres": {"real": "DOUBLE PRECISION", "blob": "BYTEA", "norowid": ""},
}

MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    workflow    TEXT NOT NULL,
    task_name   TEXT UNIQUE,
    status      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  {real} NOT NULL,
    updated_at  {real} NOT NULL,
    error       TEXT,
    result      TEXT,
    context     TEXT NOT NULL DEFAULT '{{}}',
    owner       TEXT,
    lease_until {real}
){norowid}""",
        """CREATE TABLE IF NOT EXISTS nodes (
    run_id      TEXT NOT NULL,
    node_id     TEXT NOT NULL,
    status      TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    output      TEXT,
    error       TEXT,
    started_at  {real},
    finished_at {real},
    PRIMARY KEY (run_id, node_id)
){norowid}""",
        """CREATE TABLE IF NOT EXISTS enqueued (
    task_name      TEXT PRIMARY KEY,
    workflow       TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    queue_category TEXT NOT NULL,
    queue_provider TEXT NOT NULL,
    queued_at      TEXT NOT NULL
){norowid}""",
    ],
    2: [
        "ALTER TABLE runs ADD COLUMN generation INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE enqueued ADD COLUMN created_at {real} NOT NULL DEFAULT 0",
        "CREATE INDEX IF NOT EXISTS runs_finished ON runs (updated_at)",
        "CREATE INDEX IF NOT EXISTS enqueued_created ON enqueued (created_at)",
        """CREATE TABLE IF NOT EXISTS dead_letters (
    dl_key     TEXT PRIMARY KEY,
    workflow   TEXT,
    run_id     TEXT,
    task_name  TEXT,
    reason     TEXT NOT NULL,
    detail     TEXT NOT NULL,
    created_at {real} NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 1
){norowid}""",
        "CREATE INDEX IF NOT EXISTS dead_letters_created ON dead_letters (created_at)",
        """CREATE TABLE IF NOT EXISTS activity (
    domain     TEXT NOT NULL,
    key        TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('active', 'paused', 'draining')),
    note       TEXT,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (domain, key)
)""",
        "DROP TABLE IF EXISTS used_signatures",
    ],
}


def statements(dialect: str, version: int) -> list[str]:
    types = _TYPES[dialect]
    return [s.format(**types) for s in MIGRATIONS[version]]


def current_version(execute: Callable[..., tuple[list[tuple], int]]) -> int:
    rows, _ = execute("SELECT MAX(version) FROM schema_version")
    return int(rows[0][0] or 0)


def pending(dialect: str, execute: Callable[..., Any], has_table: Callable[[str], bool]) -> list[int]:
    """The migrations a database still needs. A database without `schema_version` gets all of them: the
    version-1 statements are `IF NOT EXISTS` and an `ADD COLUMN` that exists is skipped, so a run store
    written before versioning is migrated in place."""
    if has_table("schema_version"):
        return [v for v in sorted(MIGRATIONS) if v > current_version(execute)]
    return sorted(MIGRATIONS)


def apply(dialect: str, execute: Callable[..., Any], versions: list[int], has_column: Callable[[str, str], bool],
          now: float) -> None:
    """Run the statements of `versions` inside the caller's transaction and record each version."""
    execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at "
            + _TYPES[dialect]["real"] + " NOT NULL)")
    for version in versions:
        for sql in statements(dialect, version):
            if sql.startswith("ALTER TABLE") and " ADD COLUMN " in sql:
                table = sql.split()[2]
                column = sql.split(" ADD COLUMN ", 1)[1].split()[0]
                if has_column(table, column):  # a file that already had it (written by a newer version)
                    continue
            execute(sql)
        execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (version, now))
