"""The state store: runs, node checkpoints, leases, enqueued records, dead letters, activity rows.

One implementation over two SQL backends (`runtime.state.sqlite`, `runtime.state.postgres`): the
statements are written once with `?` placeholders in the SQL both dialects share (`INSERT ... ON
CONFLICT ... DO UPDATE ... WHERE ... RETURNING`), and a backend object (`Database`) runs them.

Exactly-once per run, across processes and instances:
- **claim** is one atomic statement: an upsert that creates the run, or takes it over when it is
  resumable (`failed`, `interrupted`) or its lease expired, and bumps its `generation`;
- **lease**: while this process holds runs, a heartbeat thread renews them every third of
  `lease_seconds`, so a node longer than the lease keeps its run;
- **fencing**: every later write of the run (checkpoints, the end) is conditional on the run's
  `generation` still being ours; a write that finds another generation raises `LeaseLost` and
  writes nothing, so an owner that lost its lease cannot overwrite its successor.

Node successes are group-committed: a background flusher commits every run's pending checkpoints in
one transaction at most `checkpoint_interval` (20 ms) after they complete, and a run's end commits
its own with it; a crash may lose at most that much (those nodes run again on redelivery).

Run states: `running` (claimed by a live owner), `succeeded` (terminal, result stored), `failed` (a
node failed after its retries; a redelivery resumes it), `interrupted` (stopped before the end by a
pause, drain or shutdown; resumes), `dead` (dead-lettered: never runs again).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from runtime.canonical import compact_text
from runtime.process import pid_alive
from runtime.state.errors import LeaseLost, RunConflictError, StateError

#: the longest a node checkpoint waits to be group-committed (a crash may lose this much)
CHECKPOINT_INTERVAL = 0.02
DEFAULT_LEASE_SECONDS = 30.0
#: rows deleted per statement by `prune` (small batches: no long lock on a shared database)
PRUNE_BATCH = 500
TERMINAL = ("succeeded", "dead")

_HOST = socket.gethostname()


def new_owner() -> str:
    """An owner as recorded in `runs.owner`: host, pid and a token per store object."""
    return f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


#: The store's JSON encoding: canonical compact JSON (raises ValueError/TypeError on NaN or non-JSON).
dumps = compact_text


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
    generation: int = 1


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
    """The outcome of `Store.claim`: `claimed`, `completed` (stored result), `dead` or `busy`."""

    outcome: str
    run: Run
    created: bool = False


@dataclass(frozen=True, slots=True)
class DeadLetter:
    key: str
    workflow: str | None
    run_id: str | None
    task_name: str | None
    reason: str
    detail: str
    created_at: float
    deliveries: int


_RUN_COLS = ("run_id, workflow, task_name, status, attempts, created_at, updated_at, error, result, context, owner,"
             " lease_until, generation")
_RUN_COLS_Q = ", ".join(f"runs.{c.strip()}" for c in _RUN_COLS.split(","))


def _run(row: tuple) -> Run:
    return Run(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7],
               json.loads(row[8]) if row[8] is not None else None, json.loads(row[9]), row[10], row[11], row[12])


_CLAIM = (
    "INSERT INTO runs (run_id, workflow, task_name, status, attempts, created_at, updated_at, context, owner,"
    " lease_until, generation) VALUES (?,?,?,'running',1,?,?,?,?,?,1)"
    " ON CONFLICT (run_id) DO UPDATE SET status='running', attempts=runs.attempts+1, updated_at=excluded.updated_at,"
    " owner=excluded.owner, lease_until=excluded.lease_until, generation=runs.generation+1,"
    " task_name=COALESCE(runs.task_name, excluded.task_name)"
    " WHERE runs.workflow=excluded.workflow AND (runs.status IN ('failed', 'interrupted')"
    " OR (runs.status='running' AND runs.lease_until < ?))"
    f" RETURNING {_RUN_COLS_Q}")

_NODE_UPSERT_HEAD = "INSERT INTO nodes (run_id, node_id, status, attempts, output, error, started_at, finished_at) VALUES "
_NODE_UPSERT_TAIL = (
    " ON CONFLICT (run_id, node_id) DO UPDATE SET status=excluded.status,"
    " attempts=nodes.attempts+excluded.attempts, output=excluded.output, error=excluded.error,"
    " started_at=COALESCE(nodes.started_at, excluded.started_at), finished_at=excluded.finished_at")
_NODE_UPSERT = _NODE_UPSERT_HEAD + "(?,?,?,?,?,?,?,?)" + _NODE_UPSERT_TAIL
#: node rows per statement (8 parameters each: within SQLite's oldest limit of 999)
_NODE_ROWS_PER_STATEMENT = 100
_node_upserts: dict[int, str] = {1: _NODE_UPSERT}


def _node_upsert(rows: int) -> str:
    """The node upsert for `rows` rows in one statement."""
    sql = _node_upserts.get(rows)
    if sql is None:
        sql = _node_upserts[rows] = _NODE_UPSERT_HEAD + ",".join(["(?,?,?,?,?,?,?,?)"] * rows) + _NODE_UPSERT_TAIL
    return sql


def write_nodes(execute: Callable[..., Any], rows: list[tuple]) -> None:
    """Upsert node rows `(run_id, node_id, status, attempts, output, error, started_at, finished_at)`, many
    per statement: one round trip per 100 rows. (psycopg's executemany pipeline cost about 0.3 ms of CPU
    for the two checkpoints of a run, more than the statement; measured with bench/tasks.py.) A key may be
    in one statement once only (PostgreSQL refuses to update a row twice), so a repeated key gets its own."""
    for start in range(0, len(rows), _NODE_ROWS_PER_STATEMENT):
        chunk = rows[start:start + _NODE_ROWS_PER_STATEMENT]
        if len({(r[0], r[1]) for r in chunk}) < len(chunk):
            for row in chunk:
                execute(_NODE_UPSERT, row)
        else:
            execute(_node_upsert(len(chunk)), tuple(v for row in chunk for v in row))

#: the fence: renews the lease and proves (rowcount 1) the run is still this generation's
_FENCE = "UPDATE runs SET updated_at=?, lease_until=? WHERE run_id=? AND generation=? AND status='running'"

_ENQ_COLS = ("task_name", "workflow", "run_id", "queue_category", "queue_provider", "queued_at")


class Database:
    """What a backend provides (see runtime.state.sqlite / runtime.state.postgres)."""

    dialect = ""
    #: a description safe to print (a file path, or host/port/dbname: never a password)
    location = ""
    integrity_errors: tuple[type[BaseException], ...] = ()
    errors: tuple[type[BaseException], ...] = ()

    def execute(self, sql: str, args: tuple = ()) -> tuple[list[tuple], int]:
        """One statement in its own transaction: (rows, rowcount)."""
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator[Callable[..., tuple[list[tuple], int]]]:
        """A write transaction; yields an `execute(sql, args)` bound to it."""
        raise NotImplementedError
        yield  # pragma: no cover

    def close(self) -> None:
        raise NotImplementedError


class Store:
    """The shared state of one deployment; safe to share between threads."""

    def __init__(self, db: Database, *, lease_seconds: float = DEFAULT_LEASE_SECONDS,
                 checkpoint_interval: float = CHECKPOINT_INTERVAL, local_owners: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.lease_seconds = float(lease_seconds)
        self._checkpoint_interval = checkpoint_interval
        #: one host by construction (sqlite): a run owned by a dead local pid is free at once
        self._local_owners = local_owners
        self._clock = clock
        self._owner = new_owner()
        self._lock = threading.Lock()
        #: run id -> the generation this process holds (the fence of every write of the run)
        self._active: dict[str, int] = {}
        #: runs whose lease was found taken by another owner (the engine stops dispatching them)
        self._lost: set[str] = set()
        #: run id -> node checkpoints not yet committed
        self._pending: dict[str, list[tuple]] = {}
        self._pending_lock = threading.Lock()
        #: run id -> set when the flush that took its pending checkpoints is over: the run's end waits
        #: for it, so it never commits before checkpoints of that run the flusher already took
        self._flushing: dict[str, threading.Event] = {}
        self._flusher: threading.Thread | None = None
        self._heartbeat: threading.Thread | None = None
        self._closing = threading.Event()
        #: the last store failure seen by a write or the heartbeat (None when the last one worked)
        self.last_error: str | None = None

    @property
    def location(self) -> str:
        return self.db.location

    @property
    def backend(self) -> str:
        return self.db.dialect

    def close(self) -> None:
        """Commit pending checkpoints, stop the background threads, close the database (idempotent)."""
        self._closing.set()
        for thread in (self._flusher, self._heartbeat):
            if thread is not None:
                thread.join(timeout=2 * self._checkpoint_interval + 1)
        try:
            self.flush()
        except Exception:  # closing after the database went away: nothing more can be written
            pass
        self.db.close()

    def _q(self, sql: str, args: tuple = ()) -> list[tuple]:
        """One statement's rows; a database error becomes StateError (an integrity error stays as is)."""
        try:
            return self.db.execute(sql, args)[0]
        except self.db.errors as exc:
            if isinstance(exc, self.db.integrity_errors):
                raise
            raise StateError(f"state store {self.location}: {exc}") from None

    @contextmanager
    def _tx(self) -> Iterator[Callable[..., tuple[list[tuple], int]]]:
        try:
            with self.db.transaction() as execute:
                yield execute
        except self.db.errors as exc:
            if isinstance(exc, self.db.integrity_errors):
                raise
            raise StateError(f"state store {self.location}: {exc}") from None

    # -- reads --------------------------------------------------------------

    def get(self, run_id: str) -> Run | None:
        rows = self._q(f"SELECT {_RUN_COLS} FROM runs WHERE run_id=?", (run_id,))
        return _run(rows[0]) if rows else None

    def find(self, *, task_name: str | None = None, run_id: str | None = None) -> Run | None:
        """The run for a delivery: by task name first, then by run id."""
        if task_name:
            rows = self._q(f"SELECT {_RUN_COLS} FROM runs WHERE task_name=?", (task_name,))
            if rows:
                return _run(rows[0])
        return self.get(run_id) if run_id else None

    def nodes(self, run_id: str) -> list[NodeRecord]:
        rows = self._q("SELECT run_id, node_id, status, attempts, output, error, started_at, finished_at FROM nodes"
                       " WHERE run_id=? ORDER BY COALESCE(finished_at, 0), node_id", (run_id,))
        return [NodeRecord(r[0], r[1], r[2], r[3], json.loads(r[4]) if r[4] is not None else None, r[5], r[6], r[7])
                for r in rows]

    def completed_outputs(self, run_id: str) -> dict[str, Any]:
        """The run's own checkpoints: node id -> output of every node that succeeded."""
        return {k: json.loads(v) for k, v in self.completed_outputs_json(run_id).items()}

    def completed_outputs_json(self, run_id: str) -> dict[str, str]:
        """Like `completed_outputs`, each output still JSON text (pending checkpoints included)."""
        rows = self._q("SELECT node_id, output FROM nodes WHERE run_id=? AND status='succeeded'", (run_id,))
        out = {r[0]: r[1] for r in rows}
        with self._pending_lock:
            out.update((args[1], args[7]) for args in self._pending.get(run_id, ()))
        return out

    def list_runs(self, *, workflow: str | None = None, status: str | None = None, limit: int = 50) -> list[Run]:
        where, args = [], []
        if workflow:
            where.append("workflow=?")
            args.append(workflow)
        if status:
            where.append("status=?")
            args.append(status)
        q = f"SELECT {_RUN_COLS} FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        return [_run(r) for r in self._q(q + " ORDER BY created_at DESC LIMIT ?", tuple(args) + (limit,))]

    def count_runs(self, status: str | None = None) -> int:
        if status is None:
            return self._q("SELECT COUNT(*) FROM runs")[0][0]
        return self._q("SELECT COUNT(*) FROM runs WHERE status=?", (status,))[0][0]

    # -- the claim ----------------------------------------------------------

    def claim(self, *, workflow: str, run_id: str, task_name: str | None, context: dict[str, Any]) -> Claim:
        """Find or create the run and take it for execution, in one atomic statement.

        `claimed`: this process now owns it (generation + 1); `completed`: it succeeded before;
        `dead`: it was dead-lettered; `busy`: another owner holds a live lease. Raises
        RunConflictError when the run id belongs to another workflow or the task name to another run.
        """
        now = self._clock()
        try:  # a task name already naming another run violates runs.task_name UNIQUE: a conflict
            rows = self._q(_CLAIM, (run_id, workflow, task_name, now, now, dumps(context), self._owner,
                                    now + self.lease_seconds, now))
        except self.db.integrity_errors:
            raise RunConflictError(f"task name {task_name} already names another run than {run_id}") from None
        if rows:
            return self._claimed(_run(rows[0]))
        run = self.get(run_id)
        if run is None:  # pruned between the two statements: try once more
            return self.claim(workflow=workflow, run_id=run_id, task_name=task_name, context=context)
        if run.workflow != workflow:
            raise RunConflictError(f"run {run.run_id} belongs to workflow {run.workflow!r}, not {workflow!r}")
        if run.status == "succeeded":
            return Claim("completed", run)
        if run.status == "dead":
            return Claim("dead", run)
        if run.status == "running" and self._local_owners and self._owner_gone(run):
            rows = self._q("UPDATE runs SET status='running', attempts=attempts+1, updated_at=?, owner=?,"
                           f" lease_until=?, generation=generation+1 WHERE run_id=? AND generation=?"
                           f" RETURNING {_RUN_COLS}",
                           (now, self._owner, now + self.lease_seconds, run.run_id, run.generation))
            if rows:
                return self._claimed(_run(rows[0]))
        return Claim("busy", run)

    def _claimed(self, run: Run) -> Claim:
        with self._lock:
            self._active[run.run_id] = run.generation
            self._lost.discard(run.run_id)
            if self._heartbeat is None and not self._closing.is_set():
                self._heartbeat = threading.Thread(target=self._heartbeat_loop, name="oneiric-lease", daemon=True)
                self._heartbeat.start()
        return Claim("claimed", run, created=run.generation == 1)

    def _owner_gone(self, run: Run) -> bool:
        """A run owned by a process of this host that no longer exists (or by this process, not running it)."""
        host, _, rest = (run.owner or "").partition(":")
        pid_text, _, token = rest.partition(":")
        if host != _HOST:
            return False
        if run.owner == self._owner:
            return run.run_id not in self._active
        if pid_text == str(os.getpid()) or not pid_text.isdigit():
            return False  # another store object of this process, or an owner we cannot read
        return not pid_alive(int(pid_text))

    # -- leases ---------------------------------------------------------------

    def owns(self, run_id: str) -> bool:
        """Whether this process still holds the run (False once the heartbeat found it taken)."""
        return run_id in self._active and run_id not in self._lost

    def renew(self) -> list[str]:
        """Renew every lease this process holds; returns the runs found lost (taken by another owner)."""
        now = self._clock()
        with self._lock:
            held = dict(self._active)
        lost = []
        for run_id, generation in held.items():
            _, count = self.db.execute(_FENCE, (now, now + self.lease_seconds, run_id, generation))
            if count == 0 and run_id in self._active:
                lost.append(run_id)
        if lost:
            with self._lock:
                self._lost.update(lost)
        return lost

    def _heartbeat_loop(self) -> None:
        while not self._closing.wait(max(0.05, self.lease_seconds / 3)):
            try:
                self.renew()
                self.last_error = None
            except Exception as exc:  # the store is down: the next round retries; leases may expire meanwhile
                self.last_error = f"lease renewal failed: {type(exc).__name__}: {exc}"

    def release(self, run_id: str) -> None:
        """Give the run up without an end: its lease expires at once, so any instance may resume it."""
        with self._lock:
            generation = self._active.pop(run_id, None)
            self._lost.discard(run_id)
        with self._pending_lock:
            self._pending.pop(run_id, None)
        if generation is not None:
            try:
                self.db.execute("UPDATE runs SET status='interrupted', owner=NULL, lease_until=NULL, updated_at=?"
                                " WHERE run_id=? AND generation=? AND status='running'",
                                (self._clock(), run_id, generation))
            except Exception:  # unreachable: the lease expires by itself
                pass

    def release_all(self) -> list[str]:
        """Release every run this process holds (shutdown past its grace period), after committing the
        checkpoints already made (those nodes need not run again); returns their ids."""
        try:
            self.flush()
        except Exception:  # the store is down: the new owner re-runs those nodes
            pass
        with self._lock:
            held = list(self._active)
        for run_id in held:
            self.release(run_id)
        return held

    def _forget(self, run_id: str) -> None:
        with self._lock:
            self._active.pop(run_id, None)
            self._lost.discard(run_id)

    def _fence(self, execute: Callable[..., tuple[list[tuple], int]], run_id: str) -> None:
        generation = self._active.get(run_id)
        now = self._clock()
        if generation is None or execute(_FENCE, (now, now + self.lease_seconds, run_id, generation))[1] != 1:
            with self._lock:
                self._lost.add(run_id)
            raise LeaseLost(f"run {run_id}: this process no longer holds its lease; not written")

    # -- checkpoints and the end of a run ------------------------------------

    def record_node(self, run_id: str, node_id: str, *, status: str, attempts: int, output: Any = None,
                    error: str | None = None, started_at: float | None = None,
                    output_json: str | None = None) -> None:
        """Checkpoint one node (`succeeded` with its output, or `failed` with its error).

        A success is group-committed within `checkpoint_interval` (or with the run's end); a failure
        is committed at once. Raises LeaseLost when the run is no longer ours.
        """
        if run_id in self._lost:
            raise LeaseLost(f"run {run_id}: lease lost")
        now = self._clock()
        if status == "succeeded" and self._checkpoint_interval > 0:
            out = output_json if output_json is not None else dumps(output)
            with self._pending_lock:
                self._pending.setdefault(run_id, []).append(
                    (run_id, node_id, status, attempts, None, error, started_at, out, now))
                if self._flusher is None and not self._closing.is_set():
                    self._flusher = threading.Thread(target=self._flush_loop, name="oneiric-checkpoints",
                                                     daemon=True)
                    self._flusher.start()
            return
        out = (output_json if output_json is not None else dumps(output)) if status == "succeeded" else None
        with self._tx() as execute:
            self._fence(execute, run_id)
            execute(_NODE_UPSERT, (run_id, node_id, status, attempts, out, error, started_at, now))

    def _flush_loop(self) -> None:
        while not self._closing.wait(self._checkpoint_interval):
            try:
                self.flush()
                self.last_error = None
            except Exception as exc:  # the next round retries; finish() writes a run's own at its end
                self.last_error = f"checkpoint flush failed: {type(exc).__name__}: {exc}"
                time.sleep(self._checkpoint_interval)

    def flush(self) -> int:
        """Commit every pending checkpoint in one transaction; returns how many were written.

        Checkpoints of a run whose lease was lost are dropped (the new owner runs those nodes).
        """
        if not self._pending:
            return 0
        over = threading.Event()
        with self._pending_lock:
            batch, self._pending = self._pending, {}
            for run_id in batch:
                self._flushing[run_id] = over
        try:
            return self._flush(batch)
        finally:
            with self._pending_lock:
                for run_id in batch:
                    if self._flushing.get(run_id) is over:
                        del self._flushing[run_id]
            over.set()

    def _flush(self, batch: dict[str, list[tuple]]) -> int:
        written = 0
        try:
            with self._tx() as execute:
                for run_id, items in batch.items():
                    try:
                        self._fence(execute, run_id)
                    except LeaseLost:
                        continue
                    write_nodes(execute, self._pending_rows(items))
                    written += len(items)
        except BaseException:
            with self._pending_lock:  # not committed: put them back in front of newer ones
                for run_id, items in batch.items():
                    self._pending[run_id] = items + self._pending.get(run_id, [])
            raise
        return written

    @staticmethod
    def _pending_rows(items: list[tuple]) -> list[tuple]:
        """Node rows of pending checkpoints `(run_id, node_id, status, attempts, None, error, started_at,
        output_json, finished_at)`."""
        return [(a[0], a[1], a[2], a[3], a[7], a[5], a[6], a[8]) for a in items]

    def finish(self, run_id: str, *, status: str, result: Any = None, error: str | None = None,
               node: dict[str, Any] | None = None) -> None:
        """End this attempt: `succeeded` (result stored), `failed`/`interrupted` (resumable) or `dead`.

        `node` is a last checkpoint (the keyword arguments of `record_node`) written in the same
        transaction. Raises LeaseLost (nothing written) when another owner holds the run; when the
        store cannot be written, the lease is released (best effort) and StateError raised.
        """
        while True:  # take the run's pending checkpoints once no flush holds some of them
            with self._pending_lock:
                flushing = self._flushing.get(run_id)
                if flushing is None:
                    pending = self._pending.pop(run_id, [])
                    break
            flushing.wait(30)
        now = self._clock()
        generation = self._active.get(run_id)
        try:
            rows = self._pending_rows(pending)
            if node is not None:
                out = node.get("output_json")
                if out is None and node["status"] == "succeeded":
                    out = dumps(node.get("output"))
                rows.append((run_id, node["node_id"], node["status"], node["attempts"], out, node.get("error"),
                             node.get("started_at"), now))
            with self._tx() as execute:
                if rows:
                    write_nodes(execute, rows)
                # the fence: only this generation's running run ends; else everything above rolls back
                _, count = execute("UPDATE runs SET status=?, result=?, error=?, updated_at=?, owner=NULL,"
                                   " lease_until=NULL WHERE run_id=? AND generation=? AND status='running'",
                                   (status, dumps(result) if status == "succeeded" else None, error, now, run_id,
                                    generation if generation is not None else -1))
                if count != 1:
                    with self._lock:
                        self._lost.add(run_id)
                    raise LeaseLost(f"run {run_id}: this process no longer holds its lease; its end is not written")
        except LeaseLost:
            self._forget(run_id)
            raise
        except StateError:
            self.release(run_id)
            raise
        self._forget(run_id)

    # -- dead letters ---------------------------------------------------------

    def record_dead_letter(self, *, key: str, reason: str, detail: str, workflow: str | None = None,
                           run_id: str | None = None, task_name: str | None = None) -> DeadLetter:
        """Record (or count again) a delivery that can never succeed; the run it names (of `workflow`)
        becomes `dead` and never runs again."""
        now = self._clock()
        with self._tx() as execute:
            rows, _ = execute(
                "INSERT INTO dead_letters (dl_key, workflow, run_id, task_name, reason, detail, created_at, deliveries)"
                " VALUES (?,?,?,?,?,?,?,1) ON CONFLICT (dl_key) DO UPDATE SET deliveries=dead_letters.deliveries+1"
                " RETURNING dl_key, workflow, run_id, task_name, reason, detail, created_at, deliveries",
                (key, workflow, run_id, task_name, reason, detail[:2000], now))
            if run_id and workflow:  # only a run of that workflow (an unknown workflow names no run of ours)
                execute("UPDATE runs SET status='dead', error=?, updated_at=?, owner=NULL, lease_until=NULL"
                        " WHERE run_id=? AND workflow=? AND status<>'succeeded'",
                        (f"{reason}: {detail}"[:2000], now, run_id, workflow))
        with self._lock:
            self._active.pop(run_id or "", None)
        return DeadLetter(*rows[0])

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        rows = self._q("SELECT dl_key, workflow, run_id, task_name, reason, detail, created_at, deliveries"
                       " FROM dead_letters ORDER BY created_at DESC LIMIT ?", (limit,))
        return [DeadLetter(*r) for r in rows]

    def count_dead_letters(self) -> int:
        return self._q("SELECT COUNT(*) FROM dead_letters")[0][0]

    # -- enqueue-side dedupe --------------------------------------------------

    def enqueued(self, task_name: str) -> dict[str, Any] | None:
        rows = self._q(f"SELECT {', '.join(_ENQ_COLS)} FROM enqueued WHERE task_name=?", (task_name,))
        return dict(zip(_ENQ_COLS, rows[0])) if rows else None

    def record_enqueued(self, record: dict[str, Any]) -> bool:
        """Remember an enqueued task; False when its name was recorded before."""
        rows = self._q("INSERT INTO enqueued (task_name, workflow, run_id, queue_category, queue_provider, queued_at,"
                       " created_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT (task_name) DO NOTHING RETURNING task_name",
                       tuple(record[k] for k in _ENQ_COLS) + (self._clock(),))
        return bool(rows)

    # -- activity rows (the shared pause/drain of the postgres backend) -------

    def activity_rows(self) -> list[tuple]:
        return self._q("SELECT domain, key, state, note, updated_at, updated_by FROM activity ORDER BY domain, key")

    def set_activity(self, domain: str, key: str, state: str, note: str | None, updated_at: str,
                     updated_by: str) -> None:
        self._q("INSERT INTO activity (domain, key, state, note, updated_at, updated_by) VALUES (?,?,?,?,?,?)"
                " ON CONFLICT (domain, key) DO UPDATE SET state=excluded.state, note=excluded.note,"
                " updated_at=excluded.updated_at, updated_by=excluded.updated_by RETURNING domain",
                (domain, key, state, note, updated_at, updated_by))

    # -- retention and health -----------------------------------------------------

    def prune(self, older_than_seconds: float, *, batch: int = PRUNE_BATCH, max_batches: int = 20) -> dict[str, int]:
        """Delete finished runs (and their nodes), dead letters and enqueued records older than the
        cutoff, `batch` rows per transaction, at most `max_batches` transactions per table per call."""
        cutoff = self._clock() - older_than_seconds
        counts = {"runs": 0, "dead_letters": 0, "enqueued": 0}
        for _ in range(max_batches):
            with self._tx() as execute:
                ids = [r[0] for r in execute("SELECT run_id FROM runs WHERE status<>'running' AND updated_at<?"
                                             " LIMIT ?", (cutoff, batch))[0]]
                if not ids:
                    break
                marks = ",".join("?" * len(ids))
                execute(f"DELETE FROM nodes WHERE run_id IN ({marks})", tuple(ids))
                execute(f"DELETE FROM runs WHERE run_id IN ({marks})", tuple(ids))
            counts["runs"] += len(ids)
        for table, key in (("dead_letters", "dl_key"), ("enqueued", "task_name")):
            for _ in range(max_batches):
                _, n = self.db.execute(f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table}"
                                       " WHERE created_at<? LIMIT ?)", (cutoff, batch))
                counts[table] += max(n, 0)
                if n < batch:
                    break
        return counts

    def check(self) -> dict[str, Any]:
        """`{status, detail}`: `ready` when the store answers a query now, else `error` with the reason."""
        try:
            self.db.execute("SELECT COUNT(*) FROM schema_version")
        except Exception as exc:
            return {"status": "error", "backend": self.backend, "location": self.location,
                    "detail": f"state store {self.location}: {type(exc).__name__}: {exc}"}
        return {"status": "ready", "backend": self.backend, "location": self.location, "detail": self.last_error}
