"""HTTP routes: a bottle app for /healthz and /tasks/workflow, plus one JSON log line per request."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any, Callable

import bottle

from runtime.logs import trace_fields

if TYPE_CHECKING:  # pragma: no cover
    from runtime.orchestrator import Runtime

RETRY_AFTER = "5"
_JSON = {"Content-Type": "application/json"}


def _reply(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> bottle.HTTPResponse:
    merged = dict(_JSON)
    if headers:
        merged.update(headers)
    return bottle.HTTPResponse(body=json.dumps(body, default=str), status=status, headers=merged)


def healthz_body(rt: "Runtime") -> tuple[int, dict[str, Any]]:
    """(status code, body) for GET /healthz: 200 only when accepting and every required adapter is up."""
    state = rt.activity_state()
    if state != "accepting":
        return 503, {"status": state, "profile": rt.profile.profile.name}
    failed = rt.failed_required()
    if failed:
        return 503, {"status": "unavailable", "reason": "required adapter failed", "adapters": failed,
                     "profile": rt.profile.profile.name}
    return 200, {"status": "ok", "profile": rt.profile.profile.name, "activity_state": state,
                 "manifest_digest": rt.manifest.digest}


def _loaded_modules() -> list[str]:
    return sorted({name.partition(".")[0] for name in list(sys.modules)})


def _workflow_handler() -> Callable | None:
    try:
        from runtime.workflows.endpoint import handle_delivery
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == "runtime.workflows" or exc.name.startswith("runtime.workflows.")):
            return None
        raise
    return handle_delivery


def build_app(rt: "Runtime", *, debug_modules: bool = False) -> bottle.Bottle:
    """The routes; each handler delegates to the runtime or the workflows package."""
    app = bottle.Bottle(catchall=True, autojson=True)

    @app.get("/healthz")
    def healthz() -> bottle.HTTPResponse:
        status, body = healthz_body(rt)
        if debug_modules:
            body["modules"] = _loaded_modules()
        return _reply(status, body, {"Retry-After": RETRY_AFTER} if status == 503 else None)

    @app.post("/tasks/workflow")
    def tasks_workflow() -> bottle.HTTPResponse:
        if rt.lifecycle != "accepting":  # per-workflow pause/drain is the endpoint's call (rt.gate)
            return _reply(503, {"error": rt.lifecycle}, {"Retry-After": RETRY_AFTER})
        limit = int(rt.settings.get("http", {}).get("max_body_bytes", 1048576))
        length = bottle.request.content_length
        if length > limit:
            return _reply(413, {"error": f"body over {limit} bytes"})
        body = bottle.request.environ["wsgi.input"].read(length) if length > 0 else b""
        if len(body) > limit:
            return _reply(413, {"error": f"body over {limit} bytes"})
        handler = _workflow_handler()
        if handler is None:
            return _reply(501, {"error": "workflow delivery is not available in this build "
                                         "(runtime.workflows is not installed)"})
        status, payload, headers = handler(rt, body, bottle.request.headers)
        return _reply(int(status), payload, dict(headers or {}))

    @app.error(404)
    @app.error(405)
    def not_found(err: bottle.HTTPError) -> str:
        bottle.response.content_type = "application/json"
        return json.dumps({"error": err.status_line})

    @app.error(500)
    def server_error(err: bottle.HTTPError) -> str:
        rt.log("ERROR", "request failed", error=repr(err.exception), path=bottle.request.path)
        bottle.response.content_type = "application/json"
        return json.dumps({"error": "internal error"})

    return app


def with_request_log(app: Callable, rt: "Runtime") -> Callable:
    """WSGI middleware: count in-flight requests (all but /healthz) and log one line per request."""

    def wsgi(environ: dict, start_response: Callable) -> Any:
        started = time.monotonic()
        seen: dict[str, Any] = {}

        def capture(status: str, headers: list, exc_info: Any = None) -> Any:
            seen["status"] = status
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            result = list(app(environ, capture))
        else:
            with rt.inflight():
                result = list(app(environ, capture))
        code = int(str(seen.get("status", "500")).split(" ", 1)[0])
        fields: dict[str, Any] = {
            "httpRequest": {
                "requestMethod": environ.get("REQUEST_METHOD"),
                "requestUrl": path,
                "status": code,
                "latency": f"{time.monotonic() - started:.6f}s",
                "remoteIp": environ.get("REMOTE_ADDR"),
                "userAgent": environ.get("HTTP_USER_AGENT"),
            }
        }
        fields.update(trace_fields(environ.get("HTTP_X_CLOUD_TRACE_CONTEXT"), rt.logger.project_id))
        rt.log("WARNING" if code >= 500 else "INFO", f"{environ.get('REQUEST_METHOD')} {path} {code}", **fields)
        return result

    return wsgi
