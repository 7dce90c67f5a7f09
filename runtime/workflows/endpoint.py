"""`POST /tasks/workflow`: authenticate a delivery, key it to its run, execute once, answer.

`handle_delivery(rt, body, headers) -> (status, json_body, extra_headers)` is
what `runtime/app.py` calls. Order of checks: 413 body too large, 401 auth (503 when the
HMAC key or the token signing keys cannot be read: an outage, not the sender's fault),
400 malformed JSON or fields, 404 unknown workflow, 503 + Retry-After when
the workflow is gated (paused, draining, starting, stopping; a completed
run still answers 200), then the run is claimed in the shared state store: 200 with the
stored result for a completed run (nothing runs, whatever the delivery's signature), 409 for
a run in progress (on this or another instance), then execution: 200 with the result, 500
when a node failed after its retries (the queue retries; the redelivery resumes), 503 when a
gate closed mid-run, 503 `state_unavailable` when the store cannot be reached.

Idempotency key: the body's `run_id`; without one, `derived_run_id` (what the authentication
covers). A task name already used by another run is a conflict. An authenticated delivery that
can never succeed (bad body, unknown workflow, conflicting run, invalid workflow, a task that
rejects the run) is dead-lettered when it comes from a queue and answered 200 `dead_letter`
(see `_Never`). Error bodies are `{"error": CODE, "detail": TEXT}`.
Every delivery logs one line with the Cloud Tasks headers and the outcome.
At most `service.ADMISSION` runs execute at once; a delivery waits up to
`ADMISSION_WAIT` (50 ms) for a slot, then runs anyway.
In-flight accounting for the SIGTERM drain is the HTTP layer's (`rt.inflight()`
around every request), so it is not repeated here.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any, Mapping

from runtime.state import RunConflictError, StateError
from runtime.tasks_auth import AuthError, AuthUnavailableError
from runtime.workflows.dag import PlanError
from runtime.workflows.request import BadRequest, parse_body  # noqa: F401 (the endpoint's validator, shared)
from runtime.workflows.service import service_for

#: seconds a sender should wait, by gate reason
RETRY_AFTER = {"starting": 2, "stopping": 10, "draining": 10, "paused": 10}

Response = tuple[int, dict[str, Any], dict[str, str]]


def _error(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    return status, {"error": code, "detail": detail}, headers or {}


def _gated(reason: str) -> Response:
    return _error(503, reason, f"workflow dispatch is {reason}; retry later",
                  {"Retry-After": str(RETRY_AFTER.get(reason, 10))})


def handle_delivery(rt: Any, body: bytes, headers: Mapping[str, str]) -> Response:
    """Handle one `POST /tasks/workflow` delivery; see the module docstring for the answers."""
    started = time.monotonic()
    low = {str(k).lower(): str(v) for k, v in headers.items()}
    info: dict[str, Any] = {}
    try:
        status, payload, extra = _deliver(rt, body, low, info)
    except StateError as exc:  # the store is unreachable or cannot be written: not the sender's fault
        status, payload, extra = _error(503, "state_unavailable", str(exc), {"Retry-After": "10"})
        info["exception"] = str(exc)
    except Exception as exc:  # a bug: answer 500 so the queue retries
        status, payload, extra = _error(500, "internal", f"{type(exc).__name__} while handling the delivery")
        info["exception"] = f"{type(exc).__name__}: {exc}"
    dead = payload.get("status") == "dead_letter"
    severity = "ERROR" if dead or (status >= 500 and status != 503) else ("INFO" if status < 400 else "WARNING")
    trace = low.get("x-cloud-trace-context")
    if trace:
        from runtime.logs import trace_fields

        info.update(trace_fields(trace, getattr(getattr(rt, "logger", None), "project_id", None)))
    rt.log(severity, "workflow delivery dead-lettered" if dead else "workflow delivery", http_status=status,
           queue=low.get("x-cloudtasks-queuename"), task=low.get("x-cloudtasks-taskname"),
           retry_count=low.get("x-cloudtasks-taskretrycount"),
           execution_count=low.get("x-cloudtasks-taskexecutioncount"),
           duration_ms=round((time.monotonic() - started) * 1000, 2),
           error=payload.get("error"), **info)
    return status, payload, extra


def derived_run_id(principal: Any, body: bytes, task_name: str | None) -> str:
    """The idempotency key of a delivery whose body names no run: what its authentication covers.

    HMAC: the signed timestamp and the body's digest (a captured request replays into the same run;
    a later enqueue of the same body is signed anew and is a new run). Otherwise the queue's task
    name (Cloud Tasks resends it on every retry). With neither, a new run each time.
    """
    token = getattr(principal, "token", None)
    if getattr(principal, "mode", None) == "hmac" and token:
        return "sig-" + hashlib.sha256(b"%d." % int(token[1]) + hashlib.sha256(body).digest()).hexdigest()[:40]
    if task_name:
        return "task-" + (task_name if len(task_name) <= 180 else hashlib.sha256(task_name.encode()).hexdigest())
    return uuid.uuid4().hex


def _deliver(rt: Any, body: bytes, low: dict[str, str], info: dict[str, Any]) -> Response:
    svc = service_for(rt)
    if len(body) > svc.max_body_bytes:
        return _error(413, "payload_too_large", f"body is {len(body)} bytes; the limit is {svc.max_body_bytes}"
                      " (http.max_body_bytes)")
    try:
        principal = svc.verifier().verify(body, low)
    except AuthUnavailableError as exc:  # our secret store or key server is down: retry later, not a 401
        return _error(503, "auth_unavailable", str(exc), {"Retry-After": "10"})
    except AuthError as exc:
        return _error(401, "unauthenticated", str(exc), {"WWW-Authenticate": "Bearer" if
                      (svc.http.get("tasks_auth") == "oidc") else 'Signature header="X-Oneiric-Signature"'})
    task_name = low.get("x-cloudtasks-taskname") or None
    never = _Never(svc, info, body, task_name)
    try:
        msg = parse_body(body)
    except BadRequest as exc:
        return never(400, "bad_request", str(exc))
    workflow = msg["workflow"]
    info["workflow"] = workflow
    run_id = msg.get("run_id") or derived_run_id(principal, body, task_name)
    info["run_id"] = run_id
    if svc.engine.workflow(workflow) is None:
        return never(404, "unknown_workflow", f"no workflow {workflow!r} in the compiled manifest", workflow=workflow,
                     run_id=run_id)
    reason = rt.gate("workflow", workflow)
    if reason:
        if reason in ("paused", "draining"):  # a completed run answers even while paused (the store is up)
            existing = svc.store.find(task_name=task_name, run_id=run_id)
            if existing is not None and existing.workflow == workflow and existing.status == "succeeded":
                return _stored(principal, existing, info)
        return _gated(reason)
    try:
        plan = svc.engine.plan(workflow)
    except PlanError as exc:
        return never(500, "workflow_invalid", str(exc), workflow=workflow)
    admitted = svc.admission.acquire(timeout=svc.admission_wait)
    try:
        return _run(svc, principal, msg, workflow, run_id, task_name, plan, info, never)
    finally:
        if admitted:
            svc.admission.release()


class _Never:
    """The answer to an authenticated delivery that can never succeed.

    From a queue (the delivery carries `X-CloudTasks-TaskName`, as Cloud Tasks and the local queue
    send): recorded as a dead letter (its run, if any, becomes `dead`) and answered 200
    `{"status": "dead_letter", ...}` so the queue stops retrying; logged at ERROR. A direct call (no
    queue headers) gets the 4xx/5xx itself, as nothing retries it.
    """

    def __init__(self, svc: Any, info: dict[str, Any], body: bytes, task_name: str | None) -> None:
        self.svc, self.info, self.body, self.task_name = svc, info, body, task_name

    def __call__(self, status: int, code: str, detail: str, *, workflow: str | None = None,
                 run_id: str | None = None) -> Response:
        if self.task_name is None:
            return _error(status, code, detail)
        key = self.task_name
        letter = self.svc.store.record_dead_letter(key=key, reason=code, detail=detail, workflow=workflow,
                                                   run_id=run_id, task_name=self.task_name)
        self.info["dead_letter"] = key
        return 200, {"status": "dead_letter", "error": letter.reason, "detail": letter.detail, "dead_letter": key,
                     "deliveries": letter.deliveries, "workflow": letter.workflow, "run_id": letter.run_id}, {}


def _run(svc: Any, principal: Any, msg: dict[str, Any], workflow: str, run_id: str, task_name: str | None,
         plan: Any, info: dict[str, Any], never: _Never) -> Response:
    try:
        claim = svc.store.claim(workflow=workflow, run_id=run_id, task_name=task_name,
                                context=msg.get("context") or {})
    except RunConflictError as exc:
        return never(409, "run_conflict", str(exc), workflow=workflow, run_id=run_id)
    run_id = info["run_id"] = claim.run.run_id
    if claim.outcome == "completed":
        return _stored(principal, claim.run, info)
    if claim.outcome == "dead":
        return never(409, "dead_run", f"run {run_id} was dead-lettered: {claim.run.error}", workflow=workflow,
                     run_id=run_id)
    if claim.outcome == "busy":
        return _error(409, "run_in_progress", f"run {run_id} is being executed; retry later",
                      {"Retry-After": "5"})
    info["attempt"] = claim.run.attempts
    outcome = svc.engine.execute(claim.run, plan, fresh=claim.created)
    if outcome.status == "succeeded":
        return 200, _success(run_id, workflow, claim.run.attempts, outcome.result, False), {}
    if outcome.status == "failed":
        info["node"] = outcome.node
        return _error(500, "node_failed", f"run {run_id}: {outcome.error}")
    if outcome.status == "rejected":
        info["node"] = outcome.node
        return never(422, "rejected", f"run {run_id}: {outcome.error}", workflow=workflow, run_id=run_id)
    if outcome.status == "lost":
        return _error(409, "run_in_progress", f"{outcome.error}; another instance resumed it",
                      {"Retry-After": "5"})
    return _gated(outcome.reason or "paused")


def _stored(principal: Any, run: Any, info: dict[str, Any]) -> Response:
    """A completed run's stored result; nothing runs."""
    principal.consume()
    info["run_id"] = run.run_id
    info["deduplicated"] = True
    return 200, _success(run.run_id, run.workflow, run.attempts, run.result, True), {}


def _success(run_id: str, workflow: str, attempts: int, result: Any, deduplicated: bool) -> dict[str, Any]:
    return {"workflow": workflow, "run_id": run_id, "status": "succeeded", "attempts": attempts,
            "result": result, "deduplicated": deduplicated}
