"""The `orchestrate` verb: listen first, activate, supervise, then drain on SIGTERM and write the final health file."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from runtime import activate, health
from runtime import settings as view
from runtime.instance import Runtime
from runtime.start import StartupError, prepare


def _port(options: Any, rt: Runtime) -> int:
    """--http-port (0: any free port), else $PORT, else [http] port (checked against its constraints)."""
    if getattr(options, "http_port", None) is not None:
        if not 0 <= int(options.http_port) <= 65535:
            raise StartupError(f"--http-port {options.http_port} is not a port number (0..65535)")
        return int(options.http_port)
    env_port = rt.environ.get("PORT")
    if env_port:
        text = env_port.strip()
        if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 65535):
            raise StartupError(f"PORT={env_port!r} is not a port number (1..65535)")
        return int(text)
    return int(rt.settings.get("http", {}).get("port", 8080))


def _tick(rt: Runtime) -> None:
    before = rt.snapshot.global_state
    before_error = rt.snapshot.error
    rt.refresh_activity()
    first = getattr(rt.supervisor, "ticks", 1) == 0  # the evaluation before the first tick was not logged
    if rt.snapshot.error and (rt.snapshot.error != before_error or first):
        rt.log("ERROR", "activity store unreadable" + (": paused until it is readable (fail closed)"
                                                         if rt.snapshot.global_state == "paused" else ""),
               error=rt.snapshot.error)
    previous = (rt.state_health or {}).get("status")
    rt.state_health = rt.state.tick(now=time.time())
    if rt.state_health.get("status") != previous and previous is not None:
        rt.log("ERROR" if rt.state_health.get("status") != "ready" else "INFO",
               f"state store {rt.state_health.get('status')}", detail=rt.state_health.get("detail"))
    after = rt.snapshot.global_state
    if after != before:
        rt.log("INFO", f"activity state {rt.activity_state()}", previous=before or "accepting",
               current=after or "accepting")
    health.write_file(rt.health_path, health.build_record(rt, source="orchestrate"))


def orchestrate(options: Any) -> int:
    """Run until SIGTERM/SIGINT; 0 after a clean drain, 1 when cold start is refused."""
    rt = prepare(options)  # StartupError propagates: nothing has started yet
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    server = app = None
    if not getattr(options, "no_http", False):
        from runtime.app import App
        from runtime.listener import Server

        app = App(rt, debug_modules=rt.environ.get("ONEIRIC_DEBUG_MODULES") == "1")
        host = getattr(options, "http_host", None) or "0.0.0.0"
        limits = view.http_limits(rt.settings)
        try:
            server = Server((host, _port(options, rt)), app, header_timeout=limits["header_timeout"], log=rt.log,
                            max_header_bytes=int(limits["max_header_bytes"]),
                            max_connections=int(limits["max_connections"]))
        except (OSError, ValueError, OverflowError) as exc:
            raise StartupError(f"cannot listen on {host}:{_port(options, rt)}: {getattr(exc, 'strerror', None) or exc}") from None
        server.start()
        rt.http_port = server.port
        rt.log("INFO", "listening", host=host, port=server.port, profile=rt.profile.profile.name)

    try:  # after listening: the note is for `health` and `activity` run later without --health-path
        health.record_location(rt.cache_dir, rt.health_path)
    except OSError as exc:
        rt.log("WARNING", "cannot note where the health file is written; health and activity without "
               "--health-path will not find it", error=str(exc), path=str(rt.health_path))
    activate.activate(rt)
    from runtime.supervisor import Supervisor

    supervisor = Supervisor(lambda: _tick(rt), rt.poll_interval, rt.log)
    rt.supervisor = supervisor
    rt.refresh_activity()  # a pause recorded before start holds from the first request on
    rt.lifecycle = "accepting"
    if rt.supervisor_enabled:
        supervisor.tick()  # first evaluation + health file before declaring ready
        supervisor.start()
    else:
        try:
            health.write_file(rt.health_path, health.build_record(rt, source="orchestrate"))
        except OSError as exc:
            rt.log("ERROR", "cannot write the health file", error=str(exc), path=str(rt.health_path))
    helpers = _start_default_profile_helpers(rt, options)
    debug: dict[str, Any] = {}
    if app is not None and app.debug_modules:  # what the first 200 needed: nothing is imported after this
        from runtime.app import loaded_modules  # until the warm-up below, which waits for that 200

        debug["modules"] = loaded_modules()
    rt.log("INFO", "ready", activity_state=rt.activity_state(), profile=rt.profile.profile.name,
           manifest_digest=rt.manifest.digest, supervisor_enabled=rt.supervisor_enabled,
           watchers_enabled=rt.watchers_enabled, remote_enabled=rt.remote_enabled,
           adapters={k: v["status"] for k, v in rt.adapter_status.items()}, **debug)
    threading.Thread(target=_warm, args=(rt, app), name="oneiric-warm", daemon=True).start()

    while not stop.wait(0.5):
        pass

    grace = view.http_limits(rt.settings)["shutdown_grace"]
    rt.lifecycle = "stopping"
    rt.log("INFO", "stopping: draining in-flight work", inflight=rt.inflight_count, grace_seconds=grace)
    for helper in helpers:
        helper.stop()
    drained = rt.wait_idle(grace)
    if not drained:
        rt.log("WARNING", "shutdown grace expired with work in flight", inflight=rt.inflight_count)
        _workflows_hook(rt, "abandon")  # nodes still running are abandoned (daemon threads); leases released
    if server is not None:
        server.shutdown()
        server.server_close()
    _workflows_hook(rt, "stop")
    supervisor.stop()
    rt.lifecycle = "stopped"
    try:
        health.write_file(rt.health_path, health.build_record(rt, source="orchestrate"))
    except OSError as exc:
        rt.log("ERROR", "cannot write the final health file", error=str(exc))
    activate.close(rt)
    rt.log("INFO", "stopped", drained=drained, pid=os.getpid())
    return 0


def _warm(rt: Runtime, app: Any) -> None:
    """After ready: load the bottle app and start the workflows service (local queue dispatcher), so the
    first delivery pays for neither. Waits (up to 0.2 s) for the first 200 on /healthz, so the probe
    that admits traffic never competes with this work for the GIL."""
    try:
        if app is not None:
            app.first_ok.wait(0.2)
            app.routes()
        if getattr(rt, "http_port", None) is not None:
            _workflows_hook(rt, "start", port=rt.http_port)
    except Exception as exc:  # a broken optional part must not take the server down
        rt.log("ERROR", "warm-up failed", error=f"{type(exc).__name__}: {exc}")


def _workflows_hook(rt: Runtime, name: str, **kwargs: Any) -> None:
    """Call runtime.workflows.service.start/stop when that package is installed (stop only if it was loaded)."""
    import sys

    if name in ("stop", "abandon") and "runtime.workflows.service" not in sys.modules:
        return
    try:
        from runtime.workflows import service
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("runtime.workflows"):
            return
        raise
    try:
        getattr(service, name)(rt, **kwargs)
    except Exception as exc:
        rt.log("ERROR", f"workflows service {name} failed", error=f"{type(exc).__name__}: {exc}")


def _start_default_profile_helpers(rt: Runtime, options: Any) -> list:
    """Watchers and remote refresh run only where the profile enables them (never under serverless)."""
    helpers: list = []
    if rt.watchers_enabled and not getattr(options, "no_watch", False):
        from runtime.watch import ArtifactWatcher

        watcher = ArtifactWatcher(rt, rt.poll_interval)
        watcher.start()
        helpers.append(watcher)
    remote = rt.settings.get("remote", {}) or {}
    if rt.remote_requested and not rt.profile.profile.toggles.remote_enabled:
        rt.log("WARNING", f"remote.enabled is true but profile {rt.profile.profile.name} does not refresh remote "
                          "manifests (remote_enabled=false); serving the packaged manifest")
    if rt.remote_enabled and remote.get("manifest_url"):
        from runtime.remote import RemoteRefresher

        refresher = RemoteRefresher(rt, remote)
        refresher.start()
        helpers.append(refresher)
    return helpers
