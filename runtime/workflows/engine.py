"""Executes a workflow run: DAG order, per-node retry policy, a small thread pool, gates and checkpoints.

Task factory contract
---------------------
A workflow entry (domain ``workflow``) carries ``dag.nodes``; each node's
``task`` names a task entry (domain ``task``). The runtime uses the provider
selected for ``(task, KEY)`` in the profile artifact's ``selections`` (falling
back to the manifest entry with the highest ``(priority, stack_level)``). Its
``factory`` is ``module.path:attr``; the module must be inside
``settings.security.factory_allowlist`` and is loaded with
``runtime.adapters.base.load_factory``. ``attr`` is a callable::

    fn(payload: dict, context: dict, inputs: dict[str, Any]) -> Any

- ``payload``: the node's ``payload`` from the compiled manifest (never from
  the request), a fresh copy per call.
- ``context``: a ``runtime.workflows.context.TaskContext``: a dict holding the
  run's ``context`` object as first delivered (stored with the run; later
  deliveries of the same run reuse the stored one), a fresh copy per call,
  with attributes ``adapters`` (the activated adapters by key:
  ``context.adapters["vector"]``), ``secrets``, ``run_id``, ``workflow``,
  ``node``, ``task``, ``attempt`` and ``log()``. A factory that cannot take
  the three arguments fails its node when loaded, naming the task and the
  contract (and ``oneiric compile`` refuses it already when it can read it).
- ``inputs``: ``{dependency node id: that node's output}`` for the node's
  direct ``depends_on``, read from this run's own checkpoints.
- The return value must be JSON-serialisable; it is the node's output,
  checkpointed in this run (group-committed within 20 ms, see
  runtime.state.store) and handed to dependent nodes. A value that cannot be
  encoded fails the node at once (no retry).
- Raising an exception is a failed attempt. The node is retried per its
  ``retry_policy``: up to ``attempts`` calls in this delivery, sleeping
  ``min(max_delay, base_delay * 2**(n-1))`` plus up to ``jitter`` of that at
  random (capped at ``max_delay``) between them. When the last attempt fails
  the run fails (HTTP 500, so the queue redelivers); a redelivery resumes the
  run and skips every node already checkpointed. A task may therefore run
  more than once only when it raised, or when the process died before its
  output was committed: make side effects idempotent or key them by run.
- Raising an exception whose class has ``permanent = True`` (such as
  ``runtime.workflows.engine.Rejected``) says the run can never succeed (for
  example a context the task refuses): no retry, the run is dead-lettered.

A run executes on a worker thread, which calls the tasks of a chain one after
another itself (one thread hand-off per run, not one per node), while the
thread that asked for the run waits and watches the running attempt's
deadline. Every node attempt may take at most the node's ``timeout_seconds``
(manifest, default 600): past it the attempt counts as failed (retried per its
policy) and its thread is abandoned: it starts nothing and writes nothing when
its task returns, and a new worker continues the run. Nodes that can run in
parallel get a worker each. One run executes at most ``max_workers`` (4)
nodes at once, so one run with many long parallel nodes cannot hold back
another run's nodes.
The run's lease is renewed by the store's heartbeat while it executes; when
the store reports the lease lost (another instance took the run after it
expired), no further node starts and nothing more of the run is written
(``Outcome.status == "lost"``).
Before each node starts (and before each retry), ``rt.gate("task", KEY)`` is
asked; a pause or drain of the task key stops dispatch, waits for nodes
already running and leaves the run ``interrupted`` (resumable). The process
lifecycle (``starting``, ``stopping``) does not interrupt an admitted run:
after SIGTERM in-flight runs go on to their end within the grace period.
"""

from __future__ import annotations

import json
import queue
import random
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any, Callable

from runtime.adapters.base import AdapterError, load_factory
from runtime.model import DEFAULT_NODE_TIMEOUT, DagNode, Entry, RetryPolicy
from runtime.state import LeaseLost, Run, Store, dumps
from runtime.workflows.context import Adapters, TaskContext, check_task_signature
from runtime.workflows.dag import Plan, PlanError, build_plan

DEFAULT_MAX_WORKERS = 4
#: gate reasons that come from the process lifecycle, not from an operator's pause or drain
LIFECYCLE_REASONS = frozenset({"starting", "stopping"})


class Rejected(Exception):
    """Raised by a task: this run can never succeed (a context it refuses); dead-letter it, no retry."""

    permanent = True


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one execution of a run ended."""

    status: str  # "succeeded" | "failed" | "interrupted" | "rejected" | "lost"
    result: dict[str, Any] | None = None
    error: str | None = None
    node: str | None = None  # the failed node
    reason: str | None = None  # the gate reason when interrupted


@dataclass(frozen=True, slots=True)
class _NodeResult:
    node: DagNode
    status: str  # "succeeded" | "failed" | "interrupted" | "rejected" | "lost"
    output: Any = None
    output_json: str = "null"
    error: str | None = None
    reason: str | None = None
    attempts: int = 0
    started_at: float | None = None
    deferred: bool = False  # succeeded but not checkpointed yet: the caller writes it with the run's end


def _fresh(text: str) -> Any:
    """A new object from JSON text: every task call gets its own copy."""
    return {} if text == "{}" else json.loads(text)


class NodeTimeout(Exception):
    """A node attempt ran past its `timeout_seconds` (a failed attempt; its thread is abandoned)."""


class _Workers:
    """Daemon threads for runs and node attempts: an idle one is reused, else a new one starts, so an
    attempt abandoned past its timeout never takes capacity from the others, and none holds up process
    exit. (A thread per call costs about 0.1 ms to start; reusing them keeps a 3-node run at its old speed.)"""

    MAX_IDLE = 32

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: "queue.SimpleQueue[tuple]" = queue.SimpleQueue()
        self._idle = 0

    def run(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call `fn(*args)` on a worker; `fn` reports its own outcome (it must not raise)."""
        with self._lock:
            reuse = self._idle > 0
            if reuse:
                self._idle -= 1  # reserved: the put below is taken by one of the idle workers
        if reuse:
            self._tasks.put((fn, args))
        else:
            threading.Thread(target=self._work, args=((fn, args),), name="oneiric-node", daemon=True).start()

    def _work(self, task: tuple) -> None:
        while True:
            fn, args = task
            fn(*args)
            task = None  # drop references while idle
            with self._lock:
                if self._idle >= self.MAX_IDLE:
                    return
                self._idle += 1
            task = self._tasks.get()


_WORKERS = _Workers()


def _call_into(future: Future, fn: Callable[..., Any], args: tuple) -> None:
    if future.set_running_or_notify_cancel():
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # handed to the waiter as is
            future.set_exception(exc)


def spawn(fn: Callable[..., Any], *args: Any) -> Future:
    """Call `fn(*args)` on a daemon worker thread; its Future."""
    future: Future = Future()
    _WORKERS.run(_call_into, future, fn, args)
    return future


class _Abandoned(BaseException):
    """Raised on a run thread whose task attempt outlived its timeout: the waiting thread has taken the
    run over, so this thread stops at once (it starts no further node and writes nothing)."""


class _Lane:
    """One worker thread's turn at executing a run, as the waiting thread sees it: the task attempt it
    is calling inline and that attempt's deadline, whether it finished (and how), or whether the waiting
    thread abandoned it past that deadline. Every field is read and written under `lock`."""

    __slots__ = ("lock", "done", "node", "attempt", "started", "defer", "deadline", "abandoned", "finished",
                 "value", "error")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: released by the worker when it finished (the waiting thread blocks on it)
        self.done = threading.Lock()
        self.done.acquire()
        self.node: DagNode | None = None  # the node whose task is being called inline, else None
        self.attempt = 0
        self.started = 0.0  # when the node's first attempt started (its checkpoint's started_at)
        self.defer = False  # the node is the run's last (its checkpoint is written with the run's end)
        self.deadline = 0.0  # time.monotonic() past which the attempt is abandoned
        self.abandoned = False
        self.finished = False
        self.value: Any = None
        self.error: BaseException | None = None

    def begin(self, node: DagNode, attempt: int, started: float, defer: bool) -> None:
        """On the worker, just before it calls the node's task."""
        with self.lock:
            self.node, self.attempt, self.started, self.defer = node, attempt, started, defer
            self.deadline = time.monotonic() + node.timeout_seconds

    def end(self) -> None:
        """On the worker, as soon as the task returned or raised: raises _Abandoned when the waiting
        thread took the run over meanwhile (the task's result is then discarded)."""
        with self.lock:
            if self.abandoned:
                raise _Abandoned()
            self.node = None

    def finish(self, value: Any = None, error: BaseException | None = None) -> None:
        with self.lock:
            if self.abandoned:
                return
            self.value, self.error, self.finished = value, error, True
        self.done.release()


@dataclass(slots=True)
class _Resume:
    """Where a run continues after its worker was abandoned: `node`'s attempt `attempt` failed with `error`."""

    node: DagNode
    attempt: int
    error: Exception
    started: float
    defer: bool


class _RunState:
    """A run's progress within one execution, handed from one worker to the next on a takeover."""

    __slots__ = ("run", "plan", "done", "outputs", "context_json", "failed", "interrupted", "last", "resume")

    def __init__(self, run: Run, plan: Plan, done: dict[str, str], context_json: str) -> None:
        self.run, self.plan, self.done, self.context_json = run, plan, done, context_json
        self.outputs: dict[str, Any] = {}  # outputs produced by this execution, as objects
        self.failed: _NodeResult | None = None
        self.interrupted: str | None = None
        self.last: dict[str, Any] | None = None  # the final node's checkpoint, written with the run's end
        self.resume: _Resume | None = None


def retry_delay(policy: RetryPolicy, attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based)."""
    base = min(policy.max_delay, policy.base_delay * (2 ** (attempt - 1)))
    return max(0.0, min(policy.max_delay, base + base * policy.jitter * rng()))


def _best(entries: list[Entry]) -> Entry | None:
    return max(entries, key=lambda e: (e.priority, e.stack_level), default=None)


class Engine:
    """Workflow definitions of one runtime, plus the machinery to execute their runs."""

    def __init__(self, rt: Any, store: Store | Callable[[], Store], *, max_workers: int = DEFAULT_MAX_WORKERS,
                 sleep: Callable[[float], None] = time.sleep, rng: Callable[[], float] = random.random) -> None:
        self.rt = rt
        #: the store, or a callable returning it (the service's, opened on first use)
        self._store = store
        self._max_workers = max_workers
        self._sleep = sleep
        self._rng = rng
        self._lock = threading.Lock()
        self._plans: dict[str, Plan] = {}
        self._factories: dict[str, Callable[..., Any]] = {}
        self._payloads: dict[tuple[str, str], str] = {}
        self._seen: tuple[Any, Any] = (None, None)
        self._workflows: dict[str, Entry] = {}
        self._tasks: dict[str, Entry] = {}
        self._refresh()

    @property
    def store(self) -> Store:
        store = self._store
        return store if isinstance(store, Store) else store()

    # -- definitions ----------------------------------------------------------

    def _refresh(self) -> None:
        """Re-index when the runtime swapped its manifest or profile (a reload); runs already
        executing keep the plan they started with."""
        manifest, profile = self.rt.manifest, self.rt.profile
        if self._seen[0] is manifest and self._seen[1] is profile:
            return
        with self._lock:
            self._workflows = self._index("workflow")
            self._tasks = self._index("task")
            self._plans, self._factories, self._payloads = {}, {}, {}
            self._seen = (manifest, profile)

    def _index(self, domain: str) -> dict[str, Entry]:
        by_key: dict[str, list[Entry]] = {}
        for e in self.rt.manifest.entries:
            if e.domain == domain:
                by_key.setdefault(e.key, []).append(e)
        chosen = {s.key: s.provider for s in self.rt.profile.selections if s.domain == domain}
        out: dict[str, Entry] = {}
        for key, entries in by_key.items():
            picked = [e for e in entries if e.provider == chosen.get(key)]
            best = _best(picked or entries)
            if best is not None:
                out[key] = best
        return out

    def workflows(self) -> dict[str, Entry]:
        self._refresh()
        return dict(self._workflows)

    def workflow(self, key: str) -> Entry | None:
        self._refresh()
        return self._workflows.get(key)

    def plan(self, key: str) -> Plan:
        self._refresh()
        plan = self._plans.get(key)
        if plan is None:
            entry = self._workflows.get(key)
            if entry is None:
                raise PlanError(f"unknown workflow {key!r}")
            plan = build_plan(entry)
            for task in plan.tasks():
                if task not in self._tasks:
                    raise PlanError(f"workflow {key!r}: no task entry {task!r}")
            self._plans[key] = plan
        return plan

    def task_factory(self, task: str) -> Callable[..., Any]:
        fn = self._factories.get(task)
        if fn is None:
            entry = self._tasks.get(task)
            if entry is None:
                raise AdapterError(f"no task entry {task!r}")
            factory = entry.factory
            for s in self.rt.profile.selections:
                if s.domain == "task" and s.key == task and s.provider == entry.provider:
                    factory = s.factory or factory
            fn = load_factory(factory, self._allowlist())
            if not callable(fn):
                raise AdapterError(f"task {task!r}: factory {factory!r} is not callable")
            check_task_signature(task, factory, fn)
            self._factories[task] = fn
        return fn

    def _allowlist(self) -> list[str]:
        allowlist = getattr(self.rt, "allowlist", None)
        if callable(allowlist):
            return list(allowlist())
        return list((self.rt.settings.get("security") or {}).get("factory_allowlist") or ())

    # -- execution ------------------------------------------------------------

    def close(self) -> None:
        """Nothing to wait for: node threads are daemons (SIGTERM is bounded by the grace period, and a
        node still running then is abandoned; the store releases its run's lease)."""

    def execute(self, run: Run, plan: Plan, *, fresh: bool = False) -> Outcome:
        """Run every node not yet checkpointed for `run`, then record how the run ended.

        `fresh` says the run was just created (no checkpoints to read). A lost lease ends the
        execution as `lost` with nothing more written; a store that cannot record the end raises
        StateError after the store released the run's lease (so any instance may resume it at once).
        """
        try:
            outcome, last = self._drive(run, plan, fresh)
        except LeaseLost:
            return Outcome("lost", error=f"run {run.run_id}: lease lost to another owner")
        except BaseException as exc:
            try:
                self.store.finish(run.run_id, status="failed", error=f"engine error: {type(exc).__name__}: {exc}")
            except Exception:
                self.store.release(run.run_id)
            raise
        if outcome.status == "lost":
            return outcome
        status = "failed" if outcome.status == "rejected" else outcome.status
        try:
            self.store.finish(run.run_id, status=status, result=outcome.result, error=outcome.error, node=last)
        except LeaseLost:
            return Outcome("lost", error=f"run {run.run_id}: lease lost to another owner before its end was written")
        return outcome

    def _drive(self, run: Run, plan: Plan, fresh: bool) -> tuple[Outcome, dict[str, Any] | None]:
        """Execute the run on a worker thread while this thread watches the deadline of its task attempt.

        The worker calls the tasks of a chain one after another itself, so a run costs one thread
        hand-off, not one per node (measured by bench/tasks.py). Past an attempt's `timeout_seconds`
        this thread abandons that worker (it stops as soon as its task returns: it starts no further
        node and writes nothing) and hands the run, with that attempt failed, to a new worker. Nodes
        that run in parallel each get a worker of their own, which enforces their timeouts.
        """
        done = {} if fresh else {k: v for k, v in self.store.completed_outputs_json(run.run_id).items()
                                 if k in plan.by_id}
        state = _RunState(run, plan, done, dumps(run.context))
        # An attempt starting after a look ends no sooner than the plan's shortest timeout later: looking
        # at least that often never misses a deadline, and the worker need not signal each node it starts.
        horizon = min((n.timeout_seconds for n in plan.order), default=DEFAULT_NODE_TIMEOUT)
        while True:
            lane = _Lane()
            _WORKERS.run(self._lane_main, state, lane)
            resume = self._watch(lane, horizon)
            if resume is None:
                if lane.error is not None:
                    raise lane.error
                return lane.value
            state.resume = resume

    @staticmethod
    def _watch(lane: _Lane, horizon: float) -> _Resume | None:
        """Wait for the lane's worker to finish (None), or abandon it past its attempt's deadline (where
        the run continues)."""
        timeout = horizon
        while not lane.done.acquire(timeout=timeout):
            with lane.lock:
                if lane.finished:  # finished just now: `done` is being released
                    timeout = -1
                    continue
                node, now = lane.node, time.monotonic()
                if node is None or now < lane.deadline:
                    timeout = horizon if node is None else min(horizon, lane.deadline - now)
                    continue
                lane.abandoned = True
                error = NodeTimeout(f"ran past its timeout_seconds = {node.timeout_seconds:g}; abandoned")
                return _Resume(node, lane.attempt, error, lane.started, lane.defer)
        return None

    def _lane_main(self, state: _RunState, lane: _Lane) -> None:
        """A worker's turn at the run: its outcome (or exception) goes to the watching thread."""
        try:
            value = self._loop(state, lane)
        except _Abandoned:  # the watching thread took the run over: nothing of it is this thread's now
            return
        except BaseException as exc:
            lane.finish(error=exc)
            return
        lane.finish(value)

    def _loop(self, state: _RunState, lane: _Lane) -> tuple[Outcome, dict[str, Any] | None]:
        run, plan = state.run, state.plan
        running: dict[Future, DagNode] = {}
        resume, state.resume = state.resume, None
        if resume is not None:  # the attempt the previous worker was abandoned in failed: go on from there
            self._settle(state, self._run_node(run, resume.node, state.done, state.context_json, resume.defer,
                                               lane=lane, resume=resume))
        while True:
            if state.failed is None and state.interrupted is None:
                ready = plan.ready(state.done, [n.id for n in running.values()])
                if ready and not self.store.owns(run.run_id):
                    state.failed = _NodeResult(ready[0], "lost", error="lease lost")
                    ready = []
                if len(ready) == 1 and not running:  # a chain: the task is called on this thread
                    node = ready[0]
                    state.interrupted = self._held(node)
                    if not state.interrupted:
                        final = len(state.done) + 1 == len(plan.order)
                        self._settle(state, self._run_node(run, node, state.done, state.context_json, final,
                                                           lane=lane))
                    continue
                for node in ready[:max(0, self._max_workers - len(running))]:  # the per-run limit
                    state.interrupted = self._held(node)
                    if state.interrupted:
                        break
                    running[spawn(self._run_node, run, node, dict(state.done), state.context_json)] = node
            if not running:
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                running.pop(fut)
                self._settle(state, fut.result())
        return self._outcome(state)

    @staticmethod
    def _settle(state: _RunState, res: _NodeResult) -> None:
        if res.status == "succeeded":
            state.done[res.node.id] = res.output_json
            state.outputs[res.node.id] = res.output
            if res.deferred:
                state.last = {"node_id": res.node.id, "status": "succeeded", "attempts": res.attempts,
                              "output_json": res.output_json, "started_at": res.started_at}
        elif res.status in ("failed", "rejected", "lost"):
            if state.failed is None or (res.status == "lost" and state.failed.status != "lost"):
                state.failed = res
        else:
            state.interrupted = state.interrupted or res.reason

    @staticmethod
    def _outcome(state: _RunState) -> tuple[Outcome, dict[str, Any] | None]:
        run, plan, failed, done, last = state.run, state.plan, state.failed, state.done, state.last
        if failed is not None and failed.status == "lost":
            return Outcome("lost", error=f"run {run.run_id}: lease lost to another owner", node=failed.node.id), None
        if failed is not None:
            return Outcome(failed.status, error=failed.error, node=failed.node.id), last
        if state.interrupted is not None or len(done) < len(plan.order):
            reason = state.interrupted or "incomplete"
            return Outcome("interrupted", error=f"interrupted before the end: {reason}", reason=reason), last
        outputs = state.outputs
        result = {n.id: outputs[n.id] if n.id in outputs else json.loads(done[n.id]) for n in plan.order}
        return Outcome("succeeded", result=result), last

    def _held(self, node: DagNode) -> str | None:
        """Why `node` may not start now: a pause or drain of its task key. The process lifecycle
        (`starting`, `stopping`) never interrupts a run already admitted, so SIGTERM lets in-flight
        runs finish within the grace period."""
        reason = self.rt.gate("task", node.task)
        return None if reason in LIFECYCLE_REASONS else reason

    def _payload_json(self, workflow: str, node: DagNode) -> str:
        key = (workflow, node.id)
        text = self._payloads.get(key)
        if text is None:
            text = self._payloads[key] = dumps(node.payload)
        return text

    def _run_node(self, run: Run, node: DagNode, done: dict[str, str], context_json: str,
                  defer: bool = False, *, lane: _Lane | None = None, resume: _Resume | None = None) -> _NodeResult:
        """Call the node's task per its retry policy; checkpoint the outcome (unless `defer` and it succeeded).

        With a `lane` the task is called on this thread, its deadline watched by the thread waiting for the
        run (see `_drive`); without one each attempt gets a worker of its own and is waited for here.
        `resume` continues the node after an attempt the previous worker was abandoned in.
        """
        policy = node.retry_policy
        started = resume.started if resume is not None else time.time()
        payload_json = self._payload_json(run.workflow, node)
        inputs_json = {d: done[d] for d in node.depends_on}
        try:
            fn = self.task_factory(node.task)
        except Exception as exc:
            return self._failed(run, node, "failed", 0, f"node {node.id!r}: cannot load task {node.task!r}: {exc}",
                                started)
        adapters = Adapters(getattr(self.rt, "adapters", None) or {})
        error = ""
        attempt = first = 1
        if resume is not None:
            attempt, first = resume.attempt, resume.attempt + 1
            error = self._attempt_failed(run, node, attempt, resume.error)
        for attempt in range(first, policy.attempts + 1):
            if attempt > 1:
                self._sleep(retry_delay(policy, attempt - 1, self._rng))
                if not self.store.owns(run.run_id):
                    return _NodeResult(node, "lost", error="lease lost")
                reason = self._held(node)
                if reason:
                    try:
                        self.store.record_node(run.run_id, node.id, status="failed", attempts=attempt - 1,
                                               error=error, started_at=started)
                    except LeaseLost:
                        return _NodeResult(node, "lost", error="lease lost")
                    return _NodeResult(node, "interrupted", reason=reason)
            try:
                # fresh copies for every call: JSON text decoded anew (faster than deepcopy)
                context = TaskContext(_fresh(context_json), run_id=run.run_id, workflow=run.workflow, node=node.id,
                                      task=node.task, attempt=attempt, adapters=adapters, log=self._task_log)
                args = (_fresh(payload_json), context, {d: _fresh(t) for d, t in inputs_json.items()})
                if lane is not None:
                    lane.begin(node, attempt, started, defer)
                    try:
                        output = fn(*args)
                    except BaseException:
                        lane.end()  # raises _Abandoned instead when the run was taken over meanwhile
                        raise
                    lane.end()
                else:
                    call = spawn(fn, *args)
                    if not wait([call], node.timeout_seconds)[0]:
                        raise NodeTimeout(f"ran past its timeout_seconds = {node.timeout_seconds:g}; abandoned")
                    output = call.result()
            except Exception as exc:  # a failed attempt; the task's own error text
                if getattr(exc, "permanent", False) is True:
                    error = f"node {node.id!r} rejected the run: {type(exc).__name__}: {exc}"
                    return self._failed(run, node, "rejected", attempt, error, started)
                error = self._attempt_failed(run, node, attempt, exc)
                continue
            try:
                output_json = dumps(output)
            except (TypeError, ValueError) as exc:
                error = f"node {node.id!r}: output is not JSON-serialisable: {exc}"
                break
            if not defer:
                try:
                    self.store.record_node(run.run_id, node.id, status="succeeded", attempts=attempt,
                                           output_json=output_json, started_at=started)
                except LeaseLost:
                    return _NodeResult(node, "lost", error="lease lost")
            return _NodeResult(node, "succeeded", output=output, output_json=output_json, attempts=attempt,
                               started_at=started, deferred=defer)
        return self._failed(run, node, "failed", attempt, f"{error} (gave up after {attempt} attempt(s))", started)

    def _attempt_failed(self, run: Run, node: DagNode, attempt: int, exc: Exception) -> str:
        """Log a failed (retryable) attempt; its error text."""
        error = f"node {node.id!r} attempt {attempt}/{node.retry_policy.attempts}: {type(exc).__name__}: {exc}"
        self._log("WARNING", "workflow node attempt failed", run, node, error=error, attempt=attempt)
        return error

    def _failed(self, run: Run, node: DagNode, status: str, attempts: int, error: str,
                started: float) -> _NodeResult:
        """Checkpoint a node that failed (or rejected the run) and say so; a lost lease wins."""
        try:
            self.store.record_node(run.run_id, node.id, status="failed", attempts=attempts, error=error,
                                   started_at=started)
        except LeaseLost:
            return _NodeResult(node, "lost", error="lease lost")
        self._log("ERROR", "workflow node failed" if status == "failed" else "workflow node rejected the run",
                  run, node, error=error)
        return _NodeResult(node, status, error=error)

    def _task_log(self, severity: str, message: str, **fields: Any) -> None:
        log = getattr(self.rt, "log", None)
        if log is not None:
            log(severity, message, **fields)

    def _log(self, severity: str, message: str, run: Run, node: DagNode, **fields: Any) -> None:
        log = getattr(self.rt, "log", None)
        if log is not None:
            log(severity, message, workflow=run.workflow, run_id=run.run_id, node=node.id, task=node.task, **fields)
