"""HTTP routes: the bottle app for /healthz and /tasks/workflow (served through `runtime.wsgi.App`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable

import bottle

from runtime.wsgi import RETRY_AFTER, healthz_body, loaded_modules

if TYPE_CHECKING:  # pragma: no cover
    from runtime.orchestrator import Runtime

_JSON = {"Content-Type": "application/json"}


def _reply(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> bottle.HTTPResponse:
    merged = dict(_JSON)
    if headers:
        merged.update(headers)
    return bottle.HTTPResponse(body=json.dumps(body, default=str), status=status, headers=merged)


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
            body["modules"] = loaded_modules()
        return _reply(status, body, {"Retry-After": RETRY_AFTER} if status == 503 else None)

    @app.post("/tasks/workflow")
    def tasks_workflow() -> bottle.HTTPResponse:
        if rt.lifecycle != "accepting":  # per-workflow pause/drain is the endpoint's call (rt.gate)
            return _reply(503, {"error": rt.lifecycle, "detail": f"the instance is {rt.lifecycle}; retry later"},
                          {"Retry-After": RETRY_AFTER})
        limit = int(rt.settings.get("http", {}).get("max_body_bytes", 1048576))
        length = bottle.request.content_length
        too_large = {"error": "payload_too_large", "detail": f"body is over the limit of {limit} bytes"}
        if length > limit:
            return _reply(413, too_large)
        try:
            body = bottle.request.environ["wsgi.input"].read(length) if length > 0 else b""
        except OSError:  # the body did not arrive within the deadline (runtime.server), or the client left
            return _reply(408, {"error": "request body not received in time"})
        if len(body) > limit:
            return _reply(413, too_large)
        handler = _workflow_handler()
        if handler is None:
            return _reply(501, {"error": "not_implemented", "detail": "workflow delivery is not available in this "
                                                                       "build (runtime.workflows is not installed)"})
        status, payload, headers = handler(rt, body, bottle.request.headers)
        return _reply(int(status), payload, dict(headers or {}))

    @app.error(404)
    @app.error(405)
    def not_found(err: bottle.HTTPError) -> str:
        bottle.response.content_type = "application/json"
        return json.dumps({"error": "not_found" if err.status_code == 404 else "method_not_allowed",
                           "detail": f"{bottle.request.method} {bottle.request.path}: {err.status_line}"})

    @app.error(500)
    def server_error(err: bottle.HTTPError) -> str:
        rt.log("ERROR", "request failed", error=repr(err.exception), path=bottle.request.path)
        bottle.response.content_type = "application/json"
        return json.dumps({"error": "internal", "detail": "internal error; see the log"})

    return app
