"""`POST /tasks/workflow`: authenticate a delivery, dedupe it against stored runs, execute, answer.

`handle_delivery(rt, body, headers) -> (status, json_body, extra_headers)` is
what `runtime/app.py` calls. Order of checks: 413 body too large, 401 auth (503 when the
HMAC key or the token signing keys cannot be read: an outage, not the sender's fault),
400 malformed JSON or fields, 404 unknown workflow, 503 + Retry-After when
the workflow is gated (paused, draining, starting, stopping; a completed
run still answers 200), then the run is claimed: 200 with the stored result
for a completed run (nothing runs), 409 for a run id of another workflow or
a run in progress elsewhere, then execution:
200 with the result, 500 when a node failed after its retries, 503 when a
gate closed mid-run. Error bodies are `{"error": CODE, "detail": TEXT}`.
Every delivery logs one line with the Cloud Tasks headers and the outcome.
At most `service.ADMISSION` runs execute at once; a delivery waits up to
`ADMISSION_WAIT` (50 ms) for a slot, then runs anyway.
In-flight accounting for the SIGTERM drain is the HTTP layer's (`rt.inflight()`
around every request), so it is not repeated here.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Mapping

from runtime.tasks_auth import AuthError, AuthUnavailableError
from runtime.workflows.dag import PlanError
from runtime.workflows.request import BadRequest, parse_body  # noqa: F401 (the endpoint's validator, shared)
from runtime.workflows.runs import RunConflictError
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
    except Exception as exc:  # a bug or an unusable store: answer 500 so the queue retries
        status, payload, extra = _error(500, "internal", f"{type(exc).__name__} while handling the delivery")
        info["exception"] = f"{type(exc).__name__}: {exc}"
    severity = "INFO" if status < 400 else ("ERROR" if status >= 500 and status != 503 else "WARNING")
    trace = low.get("x-cloud-trace-context")
    if trace:
        from runtime.logs import trace_fields

        info.update(trace_fields(trace, getattr(getattr(rt, "logger", None), "project_id", None)))
    rt.log(severity, "workflow delivery", http_status=status,
           queue=low.get("x-cloudtasks-queuename"), task=low.get("x-cloudtasks-taskname"),
           retry_count=low.get("x-cloudtasks-taskretrycount"),
           execution_count=low.get("x-cloudtasks-taskexecutioncount"),
           duration_ms=round((time.monotonic() - started) * 1000, 2),
           error=payload.get("error"), **info)
    return status, payload, extra


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
    try:
        msg = parse_body(body)
    except BadRequest as exc:
        return _error(400, "bad_request", str(exc))
    workflow = msg["workflow"]
    info["workflow"] = workflow
    if msg.get("run_id"):
        info["run_id"] = msg["run_id"]
    if svc.engine.workflow(workflow) is None:
        return _error(404, "unknown_workflow", f"no workflow {workflow!r} in the compiled manifest")
    task_name = low.get("x-cloudtasks-taskname") or None
    reason = rt.gate("workflow", workflow)
    if reason:
        existing = svc.store.find(task_name=task_name, run_id=msg.get("run_id"))
        if existing is not None and existing.workflow == workflow and existing.status == "succeeded":
            return _stored(principal, existing, info)  # a completed run answers even while paused
        return _gated(reason)
    try:
        plan = svc.engine.plan(workflow)
    except PlanError as exc:
        return _error(500, "workflow_invalid", str(exc))
    run_id = msg.get("run_id") or uuid.uuid4().hex
    admitted = svc.admission.acquire(timeout=svc.admission_wait)
    try:
        return _run(svc, principal, msg, workflow, run_id, task_name, plan, info)
    finally:
        if admitted:
            svc.admission.release()


def _run(svc: Any, principal: Any, msg: dict[str, Any], workflow: str, run_id: str, task_name: str | None,
         plan: Any, info: dict[str, Any]) -> Response:
    try:
        claim = svc.store.claim(workflow=workflow, run_id=run_id, task_name=task_name,
                                context=msg.get("context") or {})
    except RunConflictError as exc:
        return _error(409, "run_conflict", str(exc))
    run_id = info["run_id"] = claim.run.run_id
    if claim.outcome == "completed":
        return _stored(principal, claim.run, info)
    if claim.outcome == "busy":
        return _error(409, "run_in_progress", f"run {run_id} is being executed; retry later",
                      {"Retry-After": "5"})
    info["attempt"] = claim.run.attempts
    # the service's HMAC verifier keeps used signatures in the run store: record it with the run's end
    used = principal.token if principal.mode == "hmac" else None
    outcome = svc.engine.execute(claim.run, plan, used_signature=used, fresh=claim.created)
    if outcome.status == "succeeded":
        if used is None:
            principal.consume()
        return 200, _success(run_id, workflow, claim.run.attempts, outcome.result, False), {}
    if outcome.status == "failed":
        info["node"] = outcome.node
        return _error(500, "node_failed", f"run {run_id}: {outcome.error}")
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
