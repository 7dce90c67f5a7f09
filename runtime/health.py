"""Health: the `/healthz` answer, the record `health --json` prints and runtime_health.json holds (built from a
Runtime, written atomically, judged fresh or stale when read back)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.activate import failed_required, unavailable_secrets
from runtime.logs import utc_now_text
from runtime.process import pid_alive

if TYPE_CHECKING:  # pragma: no cover
    from runtime.instance import Runtime

#: The health file under the cache dir (unless --health-path names another).
FILENAME = "runtime_health.json"
#: Beside it: where the last `orchestrate` of this cache dir writes its health file, so `health` and
#: `activity` for the same settings read the file it writes, even after `--health-path`.
WHERE_FILENAME = "runtime_health.where"
STATUSES = ("healthy", "degraded", "unhealthy")
#: Seconds a client should wait before retrying a 503.
RETRY_AFTER = "5"


def healthz_body(rt: "Runtime") -> tuple[int, dict[str, Any]]:
    """(status code, body) for GET /healthz: 200 only when accepting, every required adapter is up and every
    referenced secret is present and usable (the secrets' names are listed, never their values)."""
    state = rt.activity_state()
    if state != "accepting":
        return 503, {"status": state, "profile": rt.profile.profile.name}
    failed = failed_required(rt)
    if failed:
        return 503, {"status": "unavailable", "reason": "required adapter failed", "adapters": failed,
                     "profile": rt.profile.profile.name}
    secrets = unavailable_secrets(rt)
    if secrets:
        return 503, {"status": "unavailable", "reason": "required secret unavailable", "secrets": secrets,
                     "profile": rt.profile.profile.name}
    store = getattr(rt, "state", None)
    if store is not None and store.remote and store.starting:
        return 503, {"status": "starting", "reason": "state store connecting", "profile": rt.profile.profile.name}
    checked = state_block(rt)
    if checked is not None and checked.get("status") != "ready":
        return 503, {"status": "unavailable", "reason": "state store unavailable", "detail": checked.get("detail"),
                     "profile": rt.profile.profile.name}
    return 200, {"status": "ok", "profile": rt.profile.profile.name, "activity_state": state,
                 "manifest_digest": rt.manifest.digest}


def state_block(rt: "Runtime") -> dict[str, Any] | None:
    """The state store as the supervisor last checked it (None before the first check); a remote store
    not connected yet (or that failed to) is reported as it is now, not as the last tick saw it."""
    store = getattr(rt, "state", None)
    if store is not None and store.remote and store.status != "ready":
        return store.health()
    checked = getattr(rt, "state_health", None)
    return None if checked is not None and checked.get("status") == "starting" else checked


def profile_block(rt: "Runtime") -> dict[str, Any]:
    return {
        "name": rt.profile.profile.name,
        "watchers_enabled": rt.watchers_enabled,
        "remote_enabled": rt.remote_enabled,
        "inline_manifest_only": rt.profile.profile.toggles.inline_manifest_only,
    }


def decide_status(rt: "Runtime", activity_state: str, secrets_status: str,
                  adapters: dict[str, dict[str, Any]]) -> str:
    """unhealthy: a required adapter is not ready (a live probe's answer when there is one), secrets not
    ready, or not running; degraded: an optional adapter is not ready, a required one answers `degraded`,
    the service is paused/draining, or the supervisor's last tick failed; else healthy."""
    required = [v.get("status") for v in adapters.values() if v.get("required", True)]
    optional = [v.get("status") for v in adapters.values() if not v.get("required", True)]
    state = state_block(rt)
    if (any(s not in ("ready", "degraded") for s in required) or secrets_status != "ready"
            or activity_state in ("stopping", "stopped", "starting")
            or (state is not None and state.get("status") != "ready")):
        return "unhealthy"
    if ("degraded" in required or any(s != "ready" for s in optional) or activity_state in ("paused", "draining")
            or rt.snapshot.error):
        return "degraded"
    return "healthy"


def build_record(rt: "Runtime", *, source: str, adapters_live: dict[str, dict] | None = None,
                 secrets: dict[str, Any] | None = None) -> dict[str, Any]:
    """The full health record; the guide's keys come first, in the guide's order."""
    activity_state = rt.activity_state()
    secrets = secrets if secrets is not None else rt.secrets_status
    adapters = adapters_live if adapters_live is not None else rt.adapter_status
    record: dict[str, Any] = {
        "status": decide_status(rt, activity_state, secrets.get("status", "error"), adapters),
        "profile": profile_block(rt),
        "secrets": secrets,
        "lifecycle_state": {
            "activity_state": activity_state,
            "supervisor": {
                "enabled": rt.supervisor_enabled,
                "last_update": rt.snapshot.last_update,
                "poll_interval": rt.poll_interval,
                "status": _supervisor_status(rt),
            },
            "components": component_states(rt),
            "rules": [r.as_dict() for r in rt.snapshot.records + rt.snapshot.windows if r.state != "active"],
        },
        "adapters": adapters,
        "manifest": {"path": _rel(rt.manifest_path, rt.project_dir), "digest": rt.manifest.digest,
                     "entries": len(rt.manifest.entries)},
        "profile_artifact": {"path": _rel(rt.profile_path, rt.project_dir), "digest": rt.profile.digest},
        "activity_state": activity_state,
        "source": source,
        "pid": os.getpid(),
        "written_at": utc_now_text(digits=0),
    }
    state = state_block(rt)
    if state is not None:  # the state store as last checked (the supervisor's tick, or a live probe)
        record["state"] = state
    if rt.snapshot.error:
        record["lifecycle_state"]["supervisor"]["error"] = rt.snapshot.error
    return record


def _supervisor_status(rt: "Runtime") -> str:
    if not rt.supervisor_enabled:
        return "disabled"
    return rt.supervisor.status if rt.supervisor is not None else "not running"


def component_states(rt: "Runtime") -> dict[str, dict[str, Any]]:
    """lifecycle per component: every selection plus every key named by an activity rule."""
    names: dict[str, str | None] = {}
    for sel in rt.profile.selections:
        names[f"{sel.domain}/{sel.key}"] = sel.provider
    for rule in rt.snapshot.records + rt.snapshot.windows:
        if rule.domain != "*" and rule.key != "*":
            names.setdefault(f"{rule.domain}/{rule.key}", None)
    result = {}
    for label in sorted(names):
        domain, _, key = label.partition("/")
        status = rt.adapter_status.get(label)
        if status is not None and status["status"] != "ready":
            state = "failed"
        elif rt.lifecycle != "accepting":
            state = rt.lifecycle
        else:
            state = rt.snapshot.state_for(domain, key) or "active"
        result[label] = {"state": state, "provider": names[label]}
    return result


def _rel(path: Path, base: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(base).resolve()))
    except ValueError:
        return str(path)


def write_file(path: Path, record: dict[str, Any]) -> None:
    """Write atomically: a temp file in the same directory, then rename over the target."""
    write_text_atomic(Path(path), json.dumps(record, indent=2, ensure_ascii=False, default=str) + "\n")


def record_location(cache_dir: Path, path: Path) -> None:
    """Note under the cache dir that this process writes its health file at `path` (absolute)."""
    write_text_atomic(Path(cache_dir) / WHERE_FILENAME, str(Path(path).resolve()) + "\n")


def default_path(cache_dir: Path) -> Path:
    """The health file a reader without --health-path uses: where the last orchestrate of this cache dir
    said it writes (when that note is readable), else `<cache_dir>/runtime_health.json`."""
    try:
        noted = (Path(cache_dir) / WHERE_FILENAME).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        noted = ""
    return Path(noted) if noted and os.path.isabs(noted) else Path(cache_dir) / FILENAME


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def read_file(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def check_fresh(record: dict[str, Any], poll_interval: float, now: float | None = None) -> None:
    """Mark a health record read back from its file unhealthy when its writer is gone or stopped ticking."""
    import calendar

    if record.get("activity_state") == "stopped":
        return
    if not pid_alive(record.get("pid")):
        record["status"] = "unhealthy"
        record["detail"] = f"orchestrator pid {record.get('pid')} is not running; the file is stale"
        return
    supervisor = (record.get("lifecycle_state") or {}).get("supervisor") or {}
    written = record.get("written_at")
    if not supervisor.get("enabled") or not isinstance(written, str):
        return  # without a supervisor the file is written only at start and at shutdown
    try:
        age = (time.time() if now is None else now) - calendar.timegm(time.strptime(written, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return
    if age > max(3 * poll_interval, 10.0):
        record["status"] = "unhealthy"
        record["detail"] = f"the supervisor has not written the health file for {int(age)} s (poll {poll_interval} s)"


def print_json(obj: Any, stream=None) -> None:
    stream = stream or sys.stdout
    stream.write(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")
    stream.flush()
