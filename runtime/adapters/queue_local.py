"""Queue provider `local`: a SQLite-backed queue whose dispatcher pushes to `/tasks/workflow` like Cloud Tasks.

The queue lives in `<cache_dir>/workflow_queue.sqlite` (WAL), so a task
enqueued by the CLI, or still pending when the server stops, is delivered
after the next start. A task name is its primary key: enqueuing a name that
exists (pending, delivered or given up) is a no-op reported as deduplicated.

The dispatcher (started by `start()`, normally from
`runtime.workflows.service.start(rt)` once the server listens) POSTs each due
task with the headers Cloud Tasks sends (`X-CloudTasks-QueueName`,
`-TaskName`, `-TaskRetryCount`, `-TaskExecutionCount`, `-TaskETA`), a fresh
`X-Oneiric-Signature` per attempt when a signer is bound, and retries non-2xx
answers with exponential backoff between `min_backoff_seconds` and
`max_backoff_seconds` (a 503's `Retry-After` is honoured inside that range)
until `max_attempts` failed dispatches, after which the task is kept as `dead`.
A 503 (the receiver is paused, draining or starting) is retried the same way
but does not count toward `max_attempts`: a pause longer than the retry budget
must not lose the tasks it holds back.

`sqlite3` is imported, and the database opened, on first use (an enqueue, a health probe, the
dispatcher's start), not in `activate()`: the server answers its first 200 before either happens.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from runtime.adapters.base import Adapter, AdapterError

FILENAME = "workflow_queue.sqlite"
#: how often an idle dispatcher looks for tasks another process (the CLI) enqueued
POLL_SECONDS = 0.5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    name        TEXT PRIMARY KEY,
    queue       TEXT NOT NULL,
    body        BLOB NOT NULL,
    status      TEXT NOT NULL,          -- pending | leased | done | dead
    attempts    INTEGER NOT NULL DEFAULT 0,  -- dispatches made
    responses   INTEGER NOT NULL DEFAULT 0,  -- dispatches that got an HTTP answer
    deferrals   INTEGER NOT NULL DEFAULT 0,  -- answers that were 503 (paused, draining, starting)
    created_at  REAL NOT NULL,
    next_at     REAL NOT NULL,
    updated_at  REAL NOT NULL,
    last_status INTEGER,
    last_error  TEXT,
    owner       TEXT,
    lease_until REAL
);
CREATE INDEX IF NOT EXISTS tasks_due ON tasks(status, next_at);
"""

_HOST = socket.gethostname()

#: a signer turns a body into extra headers (the HMAC signature); None sends none
Signer = Callable[[bytes], Mapping[str, str]]


def _owner() -> str:
    return f"{_HOST}:{os.getpid()}"


def _owner_dead(owner: str | None) -> bool:
    if not owner:
        return True
    host, _, pid = owner.partition(":")
    if host != _HOST:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


class LocalQueue(Adapter):
    """The embedded queue: durable, deduplicated by task name, delivered by a background dispatcher."""

    name = "local"

    def __init__(self, settings: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.queue = str(self.settings.get("queue") or "default")
        self.max_attempts = int(self.settings.get("max_attempts") or 10)
        self.min_backoff = float(self.settings.get("min_backoff_seconds", 0.5))
        self.max_backoff = float(self.settings.get("max_backoff_seconds", 60))
        self.deadline = float(self.settings.get("dispatch_deadline_seconds") or 60)
        self.target_url: str | None = self.settings.get("http_target_url")
        self._signer: Signer | None = None
        self._log: Callable[..., None] | None = None
        self._conn: Any = None  # the sqlite3 connection, opened by _db() on first use
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        #: dispatcher state: "stopped" | "running" | "stopping"
        self.state = "stopped"
        self.path: Path | None = None

    # -- lifecycle --------------------------------------------------------------

    def activate(self) -> None:
        """Make the cache dir; the database itself is opened by the first call that needs it."""
        if self.path is not None:
            return
        cache_dir = Path(self.context.cache_dir) if self.context is not None else Path(".oneiric_cache")
        path = cache_dir / FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        if self.context is not None and self.context.log is not None and self._log is None:
            self._log = self.context.log

    def _db(self) -> Any:
        """The open connection (opening the database, WAL, on the first call)."""
        with self._lock:
            if self._conn is None:
                import sqlite3

                self.activate()
                conn = sqlite3.connect(str(self.path), timeout=10.0, isolation_level=None, check_same_thread=False)
                try:
                    conn.execute("PRAGMA busy_timeout=10000")
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("PRAGMA synchronous=NORMAL")
                    conn.executescript(_SCHEMA)
                except BaseException:
                    conn.close()
                    raise
                self._conn = conn
            return self._conn

    def bind(self, *, target_url: str | None = None, signer: Signer | None = None,
             log: Callable[..., None] | None = None) -> None:
        """Tell the queue where to deliver (when `http_target_url` is unset) and how to sign."""
        if not self.settings.get("http_target_url") and target_url:
            self.target_url = target_url
        self._signer = signer
        if log is not None:
            self._log = log

    def start(self, workers: int = 4) -> None:
        """Start the dispatcher threads (idempotent)."""
        self._db()
        if self.state == "running":
            return
        if not self.target_url:
            raise AdapterError("local queue has no target: set http_target_url or bind the server's URL")
        self._reclaim_orphans()
        self._stop.clear()
        self.state = "running"
        self._threads = [threading.Thread(target=self._loop, name=f"oneiric-queue-{i}", daemon=True)
                         for i in range(workers)]
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self.state != "running":
            return
        self.state = "stopping"
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._threads = []
        self.state = "stopped"

    def close(self) -> None:
        self.stop()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def health(self) -> dict[str, Any]:
        import sqlite3

        try:
            counts = dict(self._query("SELECT status, COUNT(*) FROM tasks GROUP BY status"))
        except (sqlite3.Error, OSError) as exc:
            return {"status": "error", "detail": f"queue database: {exc}"}
        detail = {"queue": self.queue, "dispatcher": self.state, "pending": counts.get("pending", 0),
                  "leased": counts.get("leased", 0), "dead": counts.get("dead", 0), "target": self.target_url}
        return {"status": "degraded" if counts.get("dead") else "ready", "detail": detail}

    # -- enqueue ---------------------------------------------------------------

    def enqueue(self, *, body: bytes, task_name: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Store a task; `deduplicated` is True when the name was already known (nothing new is queued).

        `headers` are ignored: the dispatcher signs each attempt itself.
        """
        now = time.time()
        with self._lock:
            cur = self._db().execute(
                "INSERT OR IGNORE INTO tasks (name, queue, body, status, created_at, next_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?)", (task_name, self.queue, body, "pending", now, now, now))
        self._wake.set()
        return {"task_name": task_name, "deduplicated": cur.rowcount == 0}

    def task(self, name: str) -> dict[str, Any] | None:
        rows = self._query("SELECT name, status, attempts, responses, last_status, last_error, next_at FROM tasks"
                           " WHERE name=?", (name,))
        if not rows:
            return None
        return dict(zip(("name", "status", "attempts", "responses", "last_status", "last_error", "next_at"), rows[0]))

    # -- dispatcher --------------------------------------------------------------

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db().execute(sql, args).fetchall()

    def _reclaim_orphans(self) -> None:
        """Leases held by a process that no longer exists go back to pending (a restart mid-delivery)."""
        rows = self._query("SELECT name, owner FROM tasks WHERE status='leased'")
        for name, owner in rows:
            if _owner_dead(owner) or owner == _owner():
                self._query("UPDATE tasks SET status='pending', owner=NULL, lease_until=NULL, next_at=?"
                            " WHERE name=? AND status='leased'", (time.time(), name))

    def _lease(self) -> tuple | None:
        now = time.time()
        rows = self._query(
            "UPDATE tasks SET status='leased', owner=?, lease_until=?, updated_at=? WHERE name = ("
            " SELECT name FROM tasks WHERE (status='pending' AND next_at<=?) OR (status='leased' AND lease_until<?)"
            " ORDER BY next_at LIMIT 1) RETURNING name, queue, body, attempts, responses, created_at",
            (_owner(), now + self.deadline + 30, now, now, now))
        return rows[0] if rows else None

    def _next_wait(self) -> float:
        rows = self._query("SELECT MIN(next_at) FROM tasks WHERE status='pending'")
        nxt = rows[0][0] if rows and rows[0][0] is not None else None
        if nxt is None:
            return POLL_SECONDS
        return max(0.01, min(POLL_SECONDS, nxt - time.time()))

    def _loop(self) -> None:
        import sqlite3

        while not self._stop.is_set():
            try:
                leased = self._lease()
            except sqlite3.Error as exc:
                self._emit("ERROR", "local queue: lease failed", error=str(exc))
                self._stop.wait(1.0)
                continue
            if leased is None:
                self._wake.wait(self._next_wait())
                self._wake.clear()
                continue
            self._deliver(*leased)

    def _deliver(self, name: str, queue: str, body: bytes, attempts: int, responses: int, created_at: float) -> None:
        import urllib.error
        import urllib.request

        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Google-Cloud-Tasks",
            "X-CloudTasks-QueueName": queue,
            "X-CloudTasks-TaskName": name,
            "X-CloudTasks-TaskRetryCount": str(attempts),
            "X-CloudTasks-TaskExecutionCount": str(responses),
            "X-CloudTasks-TaskETA": f"{created_at:.6f}",
        }
        status: int | None = None
        retry_after: float | None = None
        error: str | None = None
        try:
            if self._signer is not None:
                headers.update(self._signer(body))
            req = urllib.request.Request(self.target_url, data=bytes(body), headers=headers, method="POST")
            with urllib.request.urlopen(req, timeout=self.deadline) as resp:  # noqa: S310 (configured URL)
                status = resp.status
                resp.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            retry_after = _retry_after(exc.headers.get("Retry-After"))
            try:
                error = exc.read(2048).decode("utf-8", "replace")
            except OSError:
                error = exc.reason
        except Exception as exc:  # connection refused, timeout, signer failure
            error = f"{type(exc).__name__}: {exc}"
        self._settle(name, attempts + 1, responses + (status is not None), status, error, retry_after)

    def backoff(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds before the next dispatch after `attempts` failed dispatches."""
        delay = self.min_backoff * (2 ** (attempts - 1))
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(self.max_backoff, delay)

    def _settle(self, name: str, attempts: int, responses: int, status: int | None, error: str | None,
                retry_after: float | None) -> None:
        now = time.time()
        if status is not None and 200 <= status < 300:
            self._query("UPDATE tasks SET status='done', attempts=?, responses=?, last_status=?, last_error=NULL,"
                        " updated_at=?, owner=NULL, lease_until=NULL WHERE name=?",
                        (attempts, responses, status, now, name))
            self._query("DELETE FROM tasks WHERE status='done' AND updated_at<?", (now - 86400,))
            self._emit("INFO", "local queue: task delivered", task=name, attempts=attempts, http_status=status)
            return
        deferred = 1 if status == 503 else 0
        deferrals = self._query("SELECT deferrals FROM tasks WHERE name=?", (name,))[0][0] + deferred
        dead = attempts - deferrals >= self.max_attempts
        self._query("UPDATE tasks SET status=?, attempts=?, responses=?, deferrals=?, last_status=?, last_error=?,"
                    " next_at=?, updated_at=?, owner=NULL, lease_until=NULL WHERE name=?",
                    ("dead" if dead else "pending", attempts, responses, deferrals, status, (error or "")[:2000],
                     now + self.backoff(max(1, attempts - deferrals), retry_after), now, name))
        self._emit("ERROR" if dead else "WARNING",
                   "local queue: task given up" if dead else "local queue: delivery failed, will retry",
                   task=name, attempts=attempts, http_status=status, error=_first_line(error))

    def _emit(self, severity: str, message: str, **fields: Any) -> None:
        if self._log is not None:
            try:
                self._log(severity, message, **fields)
            except Exception:
                pass


def _first_line(error: str | None, limit: int = 300) -> str | None:
    """The delivery's last error for the log line (the whole text stays in the queue's database)."""
    if not error:
        return None
    line = error.strip().splitlines()[0] if error.strip() else ""
    return line[:limit] or None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
