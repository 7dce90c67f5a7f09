"""The activity store: pause/drain state per (domain, key).

`ActivityStore`: domain_activity.sqlite under the cache dir (WAL, shared by the CLI and the server of one
machine; the sqlite state backend). `SharedActivity`: the `activity` rows of the postgres state store, so
every instance enforces the same pause/drain. A store that is unreadable for good (not a database,
malformed) raises ActivityError with `corrupt=True`: the supervisor then fails closed (paused).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import sqlite3

FILENAME = "domain_activity.sqlite"
#: States an operator can set; "active" is what `resume` records.
STATES = ("active", "paused", "draining")
#: Matches every domain or every key; ("*", "*") is the whole service.
ANY = "*"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS domain_activity (
    domain     TEXT NOT NULL,
    key        TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('active', 'paused', 'draining')),
    note       TEXT,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (domain, key)
)
"""


class ActivityError(Exception):
    """The store cannot be opened or written; `corrupt` when it cannot be read at all (not merely busy)."""

    def __init__(self, message: str, *, corrupt: bool = False) -> None:
        super().__init__(message)
        self.corrupt = corrupt


def _error(path: Path, exc: Exception) -> ActivityError:
    import sqlite3

    corrupt = isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)
    return ActivityError(f"{path}: {exc}", corrupt=corrupt)


class ActivityRecord:
    __slots__ = ("domain", "key", "state", "note", "updated_at", "updated_by")

    def __init__(self, domain: str, key: str, state: str, note: str | None, updated_at: str,
                 updated_by: str) -> None:
        self.domain, self.key, self.state, self.note = domain, key, state, note
        self.updated_at, self.updated_by = updated_at, updated_by

    def as_dict(self) -> dict:
        return {"domain": self.domain, "key": self.key, "state": self.state, "note": self.note,
                "updated_at": self.updated_at, "updated_by": self.updated_by}


class ActivityStore:
    """Small wrapper over one SQLite file; each call opens its own connection, so threads and processes share it."""

    def __init__(self, path: Path, *, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._ready = False

    def _connect(self, *, create: bool) -> "sqlite3.Connection | None":
        if not create and not self.path.exists():
            return None
        import sqlite3  # only when a store exists or is written: cold start without one skips the import

        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            if not self._ready:
                if create:
                    conn.execute("PRAGMA journal_mode = WAL")
                    conn.execute(_SCHEMA)
                    self._ready = True
                else:
                    has = conn.execute(
                        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'domain_activity'").fetchone()
                    if not has:
                        conn.close()
                        return None
            return conn
        except sqlite3.Error as exc:
            raise _error(self.path, exc) from None

    def ensure(self) -> None:
        """Create the file and table (WAL mode) if needed."""
        conn = self._connect(create=True)
        if conn is not None:
            conn.close()

    def records(self) -> list[ActivityRecord]:
        """Every row; an absent store has none (reading never creates the file)."""
        conn = self._connect(create=False)
        if conn is None:
            return []
        import sqlite3

        try:
            rows = conn.execute(
                "SELECT domain, key, state, note, updated_at, updated_by FROM domain_activity "
                "ORDER BY domain, key").fetchall()
        except sqlite3.Error as exc:
            raise _error(self.path, exc) from None
        finally:
            conn.close()
        return [ActivityRecord(*row) for row in rows]

    def set(self, domain: str, key: str, state: str, *, note: str | None = None,
            updated_by: str = "cli") -> ActivityRecord:
        if state not in STATES:
            raise ActivityError(f"state {state!r} is not one of {', '.join(STATES)}")
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        record = ActivityRecord(domain, key, state, note, now, updated_by)
        conn = self._connect(create=True)
        import sqlite3

        try:
            conn.execute(
                "INSERT INTO domain_activity (domain, key, state, note, updated_at, updated_by) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (domain, key) DO UPDATE SET "
                "state = excluded.state, note = excluded.note, updated_at = excluded.updated_at, "
                "updated_by = excluded.updated_by",
                (domain, key, state, note, now, updated_by))
        except sqlite3.Error as exc:
            raise _error(self.path, exc) from None
        finally:
            conn.close()
        return record


class SharedActivity:
    """The pause/drain rows of the shared state store (`[state] backend = "postgres"`).

    `records()` never waits for a store still connecting (the supervisor keeps its previous view and
    retries next tick); `set()` (the CLI) waits for the connection.
    """

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    @property
    def path(self) -> str:
        return self._handle.location

    def ensure(self) -> None:
        self._store(None)

    def _store(self, timeout: float | None) -> Any:
        from runtime.state import StateError

        try:
            return self._handle.store(timeout)
        except StateError as exc:
            raise ActivityError(f"{self._handle.location}: {exc}") from None

    def records(self) -> list[ActivityRecord]:
        from runtime.state import StateError

        if self._handle.starting:  # none known yet: the runtime's gate says "starting" until it is connected
            return []
        try:
            rows = self._store(0.0).activity_rows()
        except StateError as exc:
            raise ActivityError(f"{self._handle.location}: {exc}") from None
        return [ActivityRecord(*row) for row in rows]

    def set(self, domain: str, key: str, state: str, *, note: str | None = None,
            updated_by: str = "cli") -> ActivityRecord:
        from runtime.state import StateError

        if state not in STATES:
            raise ActivityError(f"state {state!r} is not one of {', '.join(STATES)}")
        record = ActivityRecord(domain, key, state, note, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                updated_by)
        try:
            self._store(None).set_activity(domain, key, state, note, record.updated_at, updated_by)
        except StateError as exc:
            raise ActivityError(f"{self._handle.location}: {exc}") from None
        return record


def matches(rule_domain: str | None, rule_key: str | None, domain: str, key: str) -> bool:
    """Whether a rule for (rule_domain, rule_key) covers (domain, key); None or "*" means any."""
    return (rule_domain in (None, ANY, domain)) and (rule_key in (None, ANY, key))
