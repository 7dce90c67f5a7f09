"""Durable workflow runs: one SQLite file (`workflow_runs.sqlite`, WAL) under the cache dir.

A run row per run (idempotency key, status, attempts, context, result) and a
node row per completed or failed node (the run's own checkpoints). Node
successes are group-committed: a background flusher commits every run's
pending checkpoints in one transaction at most `CHECKPOINT_INTERVAL` (20 ms)
after they complete, and a run's end commits its own pending ones with it; so
a fast run costs two commits (claim, end) and a process crash can lose at most
the last 20 ms of checkpoints (those nodes run again on redelivery). A 200 is
answered only after the run's end is committed. Writes from
one process go through one connection under a lock (no busy-waiting between
threads); other processes (the CLI next to a server) wait on the busy timeout.

Run states: `running` (claimed by a live owner), `succeeded` (terminal, result
stored), `failed` (a node failed after its retries; a redelivery resumes it),
`interrupted` (stopped before the end by a pause, drain or shutdown; resumes).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.canonical import compact_text
from runtime.process import pid_alive

FILENAME = "workflow_runs.sqlite"
#: the longest a node checkpoint waits to be group-committed (a crash may lose this much)
CHECKPOINT_INTERVAL = 0.02
#: used signatures are kept this long (well past the 5-minute skew window)
USED_SIGNATURE_TTL = 3600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    workflow    TEXT NOT NULL,
    task_name   TEXT UNIQUE,
    status      TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    error       TEXT,
    result      TEXT,
    context     TEXT NOT NULL DEFAULT '{}',
    owner       TEXT,
    lease_until REAL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS nodes (
    run_id      TEXT NOT NULL,
    node_id     TEXT NOT NULL,
    status      TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    output      TEXT,
    error       TEXT,
    started_at  REAL,
    finished_at REAL,
    PRIMARY KEY (run_id, node_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS used_signatures (
    token TEXT PRIMARY KEY,
    t     REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS enqueued (
    task_name      TEXT PRIMARY KEY,
    workflow       TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    queue_category TEXT NOT NULL,
    queue_provider TEXT NOT NULL,
    queued_at      TEXT NOT NULL
) WITHOUT ROWID;
"""

#: this process, as recorded in `runs.owner`: host, pid and a per-process token
_HOST = socket.gethostname()
_PROCESS_TOKEN = uuid.uuid4().hex[:12]


def process_owner() -> str:
    return f"{_HOST}:{os.getpid()}:{_PROCESS_TOKEN}"


class RunConflictError(Exception):
    """The run id or task name already belongs to another workflow."""


@dataclass(frozen=True, slots=True)
class Run:
    run_id: str
    workflow: str
    task_name: str | None
    status: str
    attempts: int
    created_at: float
    updated_at: float
    error: str | None
    result: Any
    context: dict[str, Any]
    owner: str | None
    lease_until: float | None


@dataclass(frozen=True, slots=True)
class NodeRecord:
    run_id: str
    node_id: str
    status: str
    attempts: int
    output: Any
    error: str | None
    started_at: float | None
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of `RunStore.claim`: `claimed`, `completed` (stored result) or `busy`."""

    outcome: str
    run: Run
    created: bool = False


_RUN_COLS = "run_id, workflow, task_name, status, attempts, created_at, updated_at, error, result, context, owner, lease_until"


def _run(row: tuple) -> Run:
    return Run(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7],
               json.loads(row[8]) if row[8] is not None else None, json.loads(row[9]), row[10], row[11])


_NODE_UPSERT = (
    "INSERT INTO nodes (run_id, node_id, status, attempts, output, error, started_at, finished_at)"
    " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(run_id, node_id) DO UPDATE SET status=excluded.status,"
    " attempts=nodes.attempts+excluded.attempts, output=excluded.output, error=excluded.error,"
    " started_at=COALESCE(nodes.started_at, excluded.started_at), finished_at=excluded.finished_at")

#: The store's JSON encoding: canonical compact JSON (raises ValueError/TypeError on NaN or non-JSON).
dumps = compact_text


class RunStore:
    """The run and node rows of one cache dir."""

    def __init__(self, path: Path | str, *, busy_timeout: float = 10.0, lease_seconds: float = 900.0,
                 checkpoint_interval: float = CHECKPOINT_INTERVAL) -> None:
        self.path = Path(path)
        self._checkpoint_interval = checkpoint_interval
        #: run id -> node checkpoints not yet committed (see record_node)
        self._pending: dict[str, list[tuple]] = {}
        self._pending_lock = threading.Lock()
        self._flusher: threading.Thread | None = None
        self._closing = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lease_seconds = lease_seconds
        self._lock = threading.Lock()
        #: runs this process is executing now (so a stale-looking lease of ours is told apart)
        self._active: set[str] = set()
        #: run id -> when its lease should next be renewed
        self._renew_at: dict[str, float] = {}
        self._conn = sqlite3.connect(str(self.path), timeout=busy_timeout, isolation_level=None,
                                     check_same_thread=False)
        self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        with self._lock:
            self._conn.executescript(_SCHEMA)
        self._used: dict[str, float] = {}
        self._load_used()

    @classmethod
    def for_cache_dir(cls, cache_dir: Path | str, **kwargs: Any) -> "RunStore":
        return cls(Path(cache_dir) / FILENAME, **kwargs)

    def close(self) -> None:
        """Commit pending checkpoints, stop the flusher, close the connection (safe to call twice)."""
        self._closing = True
        if self._flusher is not None:
            self._flusher.join(timeout=2 * self._checkpoint_interval + 1)
        try:
            self.flush()
        except sqlite3.ProgrammingError:  # already closed
            pass
        with self._lock:
            self._conn.close()

    # -- transactions -------------------------------------------------------

    def _tx(self) -> "_Tx":
        return _Tx(self)

    # -- reads --------------------------------------------------------------

    def get(self, run_id: str) -> Run | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {_RUN_COLS} FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return _run(row) if row else None

    def find(self, *, task_name: str | None = None, run_id: str | None = None) -> Run | None:
        """The run for a delivery: by task name first, then by run id."""
        with self._lock:
            row = None
            if task_name:
                row = self._conn.execute(f"SELECT {_RUN_COLS} FROM runs WHERE task_name=?", (task_name,)).fetchone()
            if row is None and run_id:
                row = self._conn.execute(f"SELECT {_RUN_COLS} FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return _run(row) if row else None

    def nodes(self, run_id: str) -> list[NodeRecord]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT run_id, node_id, status, attempts, output, error, started_at, finished_at "
                "FROM nodes WHERE run_id=? ORDER BY COALESCE(finished_at, 0), node_id", (run_id,)).fetchall()
        return [NodeRecord(r[0], r[1], r[2], r[3], json.loads(r[4]) if r[4] is not None else None, r[5], r[6], r[7])
                for r in rows]

    def completed_outputs(self, run_id: str) -> dict[str, Any]:
        """The run's own checkpoints: node id -> output of every node that succeeded."""
        return {k: json.loads(v) for k, v in self.completed_outputs_json(run_id).items()}

    def completed_outputs_json(self, run_id: str) -> dict[str, str]:
        """Like `completed_outputs`, with each output still JSON text (pending checkpoints included)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT node_id, output FROM nodes WHERE run_id=? AND status='succeeded'", (run_id,)).fetchall()
        out = {r[0]: r[1] for r in rows}
        with self._pending_lock:
            out.update((args[1], args[7]) for args in self._pending.get(run_id, ()))
        return out

    def list_runs(self, *, workflow: str | None = None, limit: int = 50) -> list[Run]:
        q = f"SELECT {_RUN_COLS} FROM runs"
        args: tuple = ()
        if workflow:
            q += " WHERE workflow=?"
            args = (workflow,)
        q += " ORDER BY created_at DESC LIMIT ?"
        with self._lock:
            rows = self._conn.execute(q, args + (limit,)).fetchall()
        return [_run(r) for r in rows]

    def count_runs(self, status: str | None = None) -> int:
        with self._lock:
            if status is None:
                return self._conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
            return self._conn.execute("SELECT COUNT(*) FROM runs WHERE status=?", (status,)).fetchone()[0]

    # -- the claim ----------------------------------------------------------

    def _owner_live(self, run: Run, now: float) -> bool:
        if not run.owner or run.lease_until is None or run.lease_until < now:
            return False
        host, _, rest = run.owner.partition(":")
        pid_text, _, token = rest.partition(":")
        if host != _HOST:
            return True  # another machine sharing the file: trust the lease
        if token == _PROCESS_TOKEN:
            return run.run_id in self._active
        try:
            return pid_alive(int(pid_text))
        except ValueError:
            return True

    def claim(self, *, workflow: str, run_id: str, task_name: str | None, context: dict[str, Any]) -> Claim:
        """Find or create the run and take it for execution, atomically.

        `completed`: the run succeeded before (nothing may run); `busy`: a live
        owner holds it; `claimed`: this process now owns it (attempts + 1).
        Raises RunConflictError when the id belongs to another workflow.
        """
        now = time.time()
        owner = process_owner()
        context_json = dumps(context)
        with self._lock:  # the common case, a new run: one autocommit statement
            created = self._conn.execute(
                "INSERT OR IGNORE INTO runs (run_id, workflow, task_name, status, attempts, created_at, updated_at,"
                " context, owner, lease_until) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (run_id, workflow, task_name, "running", 1, now, now, context_json, owner,
                 now + self._lease_seconds)).rowcount == 1
            if created:
                self._active.add(run_id)
                self._renew_at[run_id] = now + self._lease_seconds / 2
        if created:
            return Claim("claimed", Run(run_id, workflow, task_name, "running", 1, now, now, None, None, context,
                                        owner, now + self._lease_seconds), created=True)
        with self._tx() as c:
            row = None
            if task_name:
                row = c.execute(f"SELECT {_RUN_COLS} FROM runs WHERE task_name=?", (task_name,)).fetchone()
            if row is None:
                row = c.execute(f"SELECT {_RUN_COLS} FROM runs WHERE run_id=?", (run_id,)).fetchone()
            if row is None:
                c.execute("INSERT INTO runs (run_id, workflow, task_name, status, attempts, created_at, updated_at,"
                          " context, owner, lease_until) VALUES (?,?,?,?,?,?,?,?,?,?)",
                          (run_id, workflow, task_name, "running", 1, now, now, context_json, owner,
                           now + self._lease_seconds))
                self._active.add(run_id)
                self._renew_at[run_id] = now + self._lease_seconds / 2
                run = Run(run_id, workflow, task_name, "running", 1, now, now, None, None, context, owner,
                          now + self._lease_seconds)
                return Claim("claimed", run, created=True)
            run = _run(row)
            if run.workflow != workflow:
                raise RunConflictError(f"run {run.run_id} belongs to workflow {run.workflow!r}, not {workflow!r}")
            if run.status == "succeeded":
                return Claim("completed", run)
            if run.status == "running" and self._owner_live(run, now):
                return Claim("busy", run)
            c.execute("UPDATE runs SET status='running', attempts=attempts+1, updated_at=?, owner=?, lease_until=?,"
                      " task_name=COALESCE(task_name, ?) WHERE run_id=?",
                      (now, owner, now + self._lease_seconds, task_name, run.run_id))
            self._active.add(run.run_id)
            self._renew_at[run.run_id] = now + self._lease_seconds / 2
            claimed = Run(run.run_id, run.workflow, run.task_name or task_name, "running", run.attempts + 1,
                          run.created_at, now, run.error, None, run.context, owner, now + self._lease_seconds)
            return Claim("claimed", claimed)

    # -- checkpoints and the end of a run ------------------------------------

    def record_node(self, run_id: str, node_id: str, *, status: str, attempts: int, output: Any = None,
                    error: str | None = None, started_at: float | None = None,
                    output_json: str | None = None) -> None:
        """Checkpoint one node (`succeeded` with its output, or `failed` with its error).

        `output_json` is the output already encoded (the engine encodes once). A success is
        group-committed: it waits at most `checkpoint_interval` seconds for the flusher (one
        transaction for every run's pending checkpoints), or goes with the run's end if that comes
        first. A failure is committed at once. The run's lease is renewed when half of it passed.
        """
        if status == "succeeded" and self._checkpoint_interval > 0:
            out = output_json if output_json is not None else dumps(output)
            with self._pending_lock:
                self._pending.setdefault(run_id, []).append(
                    (run_id, node_id, status, attempts, None, error, started_at, out, time.time()))
                if self._flusher is None and not self._closing:
                    self._flusher = threading.Thread(target=self._flush_loop, name="oneiric-checkpoints",
                                                     daemon=True)
                    self._flusher.start()
            return
        if time.time() < self._renew_at.get(run_id, 0.0):  # no lease renewal due: one autocommit statement
            with self._lock:
                self._write_node(self._conn, run_id, node_id, status, attempts, output, error, started_at,
                                 output_json, renew=False)
            return
        with self._tx() as c:
            self._write_node(c, run_id, node_id, status, attempts, output, error, started_at, output_json)

    def _flush_loop(self) -> None:
        while not self._closing:
            time.sleep(self._checkpoint_interval)
            try:
                self.flush()
            except sqlite3.Error:  # the next round retries; finish() writes a run's own at its end
                time.sleep(self._checkpoint_interval)

    def flush(self) -> int:
        """Commit every pending checkpoint in one transaction; returns how many were written."""
        if not self._pending:
            return 0
        with self._tx() as c:
            with self._pending_lock:
                batch, self._pending = self._pending, {}
            now = time.time()
            self._write_pending(c, [args for items in batch.values() for args in items])
            for run_id in batch:
                if now >= self._renew_at.get(run_id, 0.0):
                    c.execute("UPDATE runs SET updated_at=?, lease_until=? WHERE run_id=?",
                              (now, now + self._lease_seconds, run_id))
                    self._renew_at[run_id] = now + self._lease_seconds / 2
        return sum(len(v) for v in batch.values())

    def _write_node(self, c: sqlite3.Connection, run_id: str, node_id: str, status: str, attempts: int,
                    output: Any, error: str | None, started_at: float | None, output_json: str | None,
                    renew: bool = True, finished_at: float | None = None) -> None:
        now = time.time()
        out = (output_json if output_json is not None else dumps(output)) if status == "succeeded" else None
        c.execute(_NODE_UPSERT, (run_id, node_id, status, attempts, out, error, started_at, finished_at or now))
        if renew:
            c.execute("UPDATE runs SET updated_at=?, lease_until=? WHERE run_id=?",
                      (now, now + self._lease_seconds, run_id))
            self._renew_at[run_id] = now + self._lease_seconds / 2

    @staticmethod
    def _write_pending(c: sqlite3.Connection, items: list[tuple]) -> None:
        """Pending checkpoints, `(run_id, node_id, status, attempts, None, error, started_at, output_json,
        finished_at)` each, in one statement."""
        if items:
            c.executemany(_NODE_UPSERT, [(a[0], a[1], a[2], a[3], a[7], a[5], a[6], a[8]) for a in items])

    def finish(self, run_id: str, *, status: str, result: Any = None, error: str | None = None,
               node: dict[str, Any] | None = None, used_signature: tuple[str, float] | None = None) -> None:
        """End this attempt: `succeeded` (result stored), `failed` or `interrupted` (resumable).

        In the same transaction: `node`, a last checkpoint (the keyword arguments of `record_node`),
        and `used_signature`, a (token, t) pair to record as used (see runtime.tasks_auth).
        """
        now = time.time()
        with self._tx() as c:
            with self._pending_lock:
                pending = self._pending.pop(run_id, [])
            self._write_pending(c, pending)
            if node is not None:
                self._write_node(c, run_id, node["node_id"], node["status"], node["attempts"], node.get("output"),
                                 node.get("error"), node.get("started_at"), node.get("output_json"), renew=False)
            c.execute("UPDATE runs SET status=?, result=?, error=?, updated_at=?, owner=NULL, lease_until=NULL"
                      " WHERE run_id=?",
                      (status, dumps(result) if status == "succeeded" else None, error, now, run_id))
            if used_signature is not None:
                c.execute("INSERT OR IGNORE INTO used_signatures (token, t) VALUES (?, ?)", used_signature)
        if used_signature is not None:
            self._remember(*used_signature)
        self._active.discard(run_id)
        self._renew_at.pop(run_id, None)

    def release(self, run_id: str) -> None:
        self._active.discard(run_id)

    # -- replay protection (the `ReplayCache` protocol of runtime.tasks_auth) --
    # Used signatures are written to SQLite (so a restart does not reopen the skew window) and
    # mirrored in memory, so the check on every delivery costs no query. A second server process
    # on the same cache dir would not see this one's recent signatures (one server per cache dir).

    def _load_used(self) -> None:
        with self._lock:
            rows = self._conn.execute("SELECT token, t FROM used_signatures WHERE t > ?",
                                      (time.time() - USED_SIGNATURE_TTL,)).fetchall()
        self._used = dict(rows)

    def seen(self, token: str) -> bool:
        return token in self._used

    def add(self, token: str, t: float) -> bool:
        with self._tx() as c:
            fresh = c.execute("INSERT OR IGNORE INTO used_signatures (token, t) VALUES (?, ?)",
                              (token, t)).rowcount == 1
        self._remember(token, t)
        return fresh

    def _remember(self, token: str, t: float) -> None:
        self._used[token] = t
        if len(self._used) > 50000:
            cutoff = time.time() - USED_SIGNATURE_TTL
            self._used = {k: v for k, v in self._used.items() if v > cutoff}
            with self._tx() as c:
                c.execute("DELETE FROM used_signatures WHERE t < ?", (cutoff,))

    # -- enqueue-side dedupe --------------------------------------------------

    def enqueued(self, task_name: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT task_name, workflow, run_id, queue_category, queue_provider, queued_at"
                                     " FROM enqueued WHERE task_name=?", (task_name,)).fetchone()
        if row is None:
            return None
        return dict(zip(("task_name", "workflow", "run_id", "queue_category", "queue_provider", "queued_at"), row))

    def record_enqueued(self, record: dict[str, Any]) -> None:
        with self._tx() as c:
            c.execute("INSERT OR IGNORE INTO enqueued (task_name, workflow, run_id, queue_category, queue_provider,"
                      " queued_at) VALUES (?,?,?,?,?,?)",
                      (record["task_name"], record["workflow"], record["run_id"], record["queue_category"],
                       record["queue_provider"], record["queued_at"]))


class _Tx:
    """`BEGIN IMMEDIATE` ... `COMMIT` under the store's lock; rolls back on error."""

    def __init__(self, store: RunStore) -> None:
        self._store = store

    def __enter__(self) -> sqlite3.Connection:
        self._store._lock.acquire()
        try:
            self._store._conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._store._lock.release()
            raise
        return self._store._conn

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._store._conn.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self._store._lock.release()

