"""The WSGI app and every route: request log, in-flight accounting, `GET /healthz`, `POST /tasks/workflow`.

`/healthz` is answered with the standard library so the readiness probe never waits for bottle; every
other path goes to the bottle routes, built on first use or by the warm-up right after activation (as
functions-framework's LazyWSGIApp defers its app). `runtime.listener` serves this app.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from runtime import settings as view
from runtime.health import RETRY_AFTER, healthz_body
from runtime.logs import trace_fields

if TYPE_CHECKING:  # pragma: no cover
    import bottle

    from runtime.instance import Runtime


def loaded_modules() -> list[str]:
    """Sorted top-level names of every loaded module (the import-purity check)."""
    return sorted({name.partition(".")[0] for name in list(sys.modules)})


class App:
    """WSGI callable: /healthz here, the rest through the bottle routes; thread-safe lazy load."""

    def __init__(self, rt: "Runtime", *, debug_modules: bool = False) -> None:
        self.rt = rt
        self.debug_modules = debug_modules
        self._app: Callable | None = None
        self._lock = threading.Lock()
        #: set once /healthz has answered 200: background warm-up waits for it (readiness first)
        self.first_ok = threading.Event()

    def routes(self) -> Callable:
        """The bottle app, built on first use."""
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = build_routes(self.rt)
        return self._app

    def _healthz(self, method: str, start_response: Callable) -> list[bytes]:
        if method not in ("GET", "HEAD"):
            return _json(start_response, "405 Method Not Allowed", {"error": "method_not_allowed", "detail":
                         f"{method} /healthz: use GET or HEAD"}, [("Allow", "GET, HEAD")])
        status, body = healthz_body(self.rt)
        if self.debug_modules:
            body["modules"] = loaded_modules()
        if status == 200:
            result = _json(start_response, "200 OK", body)
            self.first_ok.set()
            return result
        return _json(start_response, "503 Service Unavailable", body, [("Retry-After", RETRY_AFTER)])

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        started = time.monotonic()
        seen: dict[str, Any] = {}

        def capture(status: str, headers: list, exc_info: Any = None) -> Any:
            seen["status"] = status
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "")
        if path == "/healthz":
            result = self._healthz(method, capture)
        else:
            with self.rt.inflight():
                result = list(self.routes()(environ, capture))
        self._log(environ, method, path, seen.get("status", "500"), started)
        return result

    def _log(self, environ: dict, method: str, path: str, status: str, started: float) -> None:
        rt = self.rt
        code = int(str(status).split(" ", 1)[0])
        fields: dict[str, Any] = {
            "httpRequest": {
                "requestMethod": method,
                "requestUrl": path,
                "status": code,
                "latency": f"{time.monotonic() - started:.6f}s",
                "remoteIp": environ.get("REMOTE_ADDR"),
                "userAgent": environ.get("HTTP_USER_AGENT"),
            }
        }
        fields.update(trace_fields(environ.get("HTTP_X_CLOUD_TRACE_CONTEXT"), rt.logger.project_id))
        rt.log("WARNING" if code >= 500 else "INFO", f"{method} {path} {code}", **fields)


def _json(start_response: Callable, status: str, body: dict[str, Any],
          headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    data = json.dumps(body, default=str).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
                   + (headers or []))
    return [data]


def request_headers(environ: dict) -> dict[str, str]:
    """The request's headers by their HTTP names, decoded leniently: the server hands them over as latin-1
    (PEP 3333); UTF-8 is tried, and bytes that are not UTF-8 (`caf\\xe9`) become U+FFFD instead of an error
    (bottle's own header view raises UnicodeDecodeError, a 500 before authentication)."""
    out: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_") or key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = key[5:] if key.startswith("HTTP_") else key
            text = value.encode("latin-1", "replace").decode("utf-8", "replace") if isinstance(value, str) else ""
            out[name.replace("_", "-").title()] = text
    return out


# ---------------------------------------------------------------- the bottle routes (imported lazily)

def _workflow_handler() -> Callable | None:
    try:
        from runtime.workflows.endpoint import handle_delivery
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == "runtime.workflows" or exc.name.startswith("runtime.workflows.")):
            return None
        raise
    return handle_delivery


def build_routes(rt: "Runtime") -> "bottle.Bottle":
    """Every route but /healthz; each handler delegates to the runtime or the workflows package."""
    import bottle

    app = bottle.Bottle(catchall=True, autojson=True)

    def reply(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> bottle.HTTPResponse:
        return bottle.HTTPResponse(body=json.dumps(body, default=str), status=status,
                                   headers={"Content-Type": "application/json", **(headers or {})})

    @app.post("/tasks/workflow")
    def tasks_workflow() -> bottle.HTTPResponse:
        if rt.lifecycle != "accepting":  # per-workflow pause/drain is the endpoint's call (rt.gate)
            return reply(503, {"error": rt.lifecycle, "detail": f"the instance is {rt.lifecycle}; retry later"},
                         {"Retry-After": RETRY_AFTER})
        limit = int(view.http_limits(rt.settings)["max_body_bytes"])
        length = bottle.request.content_length
        too_large = {"error": "payload_too_large", "detail": f"body is over the limit of {limit} bytes"}
        if length > limit:
            return reply(413, too_large)
        try:
            body = bottle.request.environ["wsgi.input"].read(length) if length > 0 else b""
        except OSError:  # the body did not arrive within the deadline (runtime.listener), or the client left
            return reply(408, {"error": "request body not received in time"})
        if len(body) > limit:
            return reply(413, too_large)
        handler = _workflow_handler()
        if handler is None:
            return reply(501, {"error": "not_implemented", "detail": "workflow delivery is not available in this "
                                                                     "build (runtime.workflows is not installed)"})
        status, payload, headers = handler(rt, body, request_headers(bottle.request.environ))
        return reply(int(status), payload, dict(headers or {}))

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
