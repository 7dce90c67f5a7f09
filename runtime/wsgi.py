"""The WSGI entry point: request log, in-flight accounting, /healthz, and the bottle app loaded lazily.

`/healthz` is answered here with the standard library so the readiness probe never waits for bottle;
every other path goes to `runtime.http.build_app`, imported on first use or by the server's warm-up
right after activation (as functions-framework's LazyWSGIApp defers its app).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from runtime.logs import trace_fields

if TYPE_CHECKING:  # pragma: no cover
    from runtime.orchestrator import Runtime

RETRY_AFTER = "5"


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


def loaded_modules() -> list[str]:
    """Sorted top-level names of every loaded module (the import-purity check)."""
    return sorted({name.partition(".")[0] for name in list(sys.modules)})


class App:
    """WSGI callable wrapping the bottle app; thread-safe lazy load."""

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
                    from runtime.http import build_app

                    self._app = build_app(self.rt, debug_modules=self.debug_modules)
        return self._app

    def _healthz(self, start_response: Callable) -> list[bytes]:
        status, body = healthz_body(self.rt)
        if self.debug_modules:
            body["modules"] = loaded_modules()
        data = json.dumps(body, default=str).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        if status == 503:
            headers.append(("Retry-After", RETRY_AFTER))
        start_response("200 OK" if status == 200 else "503 Service Unavailable", headers)
        if status == 200:
            self.first_ok.set()
        return [data]

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        started = time.monotonic()
        seen: dict[str, Any] = {}

        def capture(status: str, headers: list, exc_info: Any = None) -> Any:
            seen["status"] = status
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "")
        if path == "/healthz" and method in ("GET", "HEAD"):
            result = self._healthz(capture)
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
