"""Health records: the shape `health --json` prints and runtime_health.json holds, and their atomic file I/O."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from runtime.orchestrator import Runtime

FILENAME = "runtime_health.json"
STATUSES = ("healthy", "degraded", "unhealthy")


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
    if (any(s not in ("ready", "degraded") for s in required) or secrets_status != "ready"
            or activity_state in ("stopping", "stopped", "starting")):
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
                "status": rt.supervisor_status(),
            },
            "components": rt.component_states(),
            "rules": [r.as_dict() for r in rt.snapshot.records + rt.snapshot.windows if r.state != "active"],
        },
        "adapters": adapters,
        "manifest": {"path": _rel(rt.manifest_path, rt.project_dir), "digest": rt.manifest.digest,
                     "entries": len(rt.manifest.entries)},
        "profile_artifact": {"path": _rel(rt.profile_path, rt.project_dir), "digest": rt.profile.digest},
        "activity_state": activity_state,
        "source": source,
        "pid": os.getpid(),
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if rt.snapshot.error:
        record["lifecycle_state"]["supervisor"]["error"] = rt.snapshot.error
    return record


def _rel(path: Path, base: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(base).resolve()))
    except ValueError:
        return str(path)


def write_file(path: Path, record: dict[str, Any]) -> None:
    """Write atomically: a temp file in the same directory, then rename over the target."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = json.dumps(record, indent=2, ensure_ascii=False, default=str) + "\n"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(data)
    os.replace(tmp, path)


def read_file(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def print_json(obj: Any, stream=None) -> None:
    stream = stream or sys.stdout
    stream.write(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")
    stream.flush()
