"""Procfile stage: render Procfile and Procfile.cloudrun from one template and the compiled profile artifact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: The profile the web process serves when none is named (SPEC section 1).
DEFAULT_PROFILE = "serverless"
#: Files written at the project root, all from the same template.
TARGETS = ("Procfile", "Procfile.cloudrun")
TEMPLATE = "Procfile.j2"


class ProcfileError(Exception):
    """The profile artifact is missing or unreadable, or the template failed to render."""


def load_profile(root: Path, name: str) -> tuple[str, dict[str, Any]]:
    rel = f"build/{name}_profile.json"
    try:
        data = json.loads((root / rel).read_bytes())
    except FileNotFoundError:
        raise ProcfileError(f"{rel} not found: run oneiric compile --profile {name} first") from None
    except (OSError, ValueError) as exc:
        raise ProcfileError(f"{rel}: unreadable profile artifact ({exc}): run oneiric compile") from exc
    if not isinstance(data, dict) or not isinstance(data.get("profile"), dict):
        raise ProcfileError(f"{rel}: not a profile artifact")
    return rel, data


def context_for(rel: str, data: dict[str, Any], target: str) -> dict[str, Any]:
    remote = (data.get("settings") or {}).get("remote") or {}
    return {
        "profile": data["profile"].get("name"),
        "no_remote": not remote.get("enabled", False),
        "target": target,
        "artifact": rel,
        "digest": data.get("digest"),
    }


def render_procfiles(root: Path, name: str, template: Path | None = None) -> dict[Path, bytes]:
    """The bytes of every target file, keyed by its path under `root`."""
    from compiler.release import ReportError, load_template

    rel, data = load_profile(root, name)
    try:
        tpl = load_template(TEMPLATE, template)
        return {root / target: tpl.render(**context_for(rel, data, target)).encode("utf-8") for target in TARGETS}
    except ReportError as exc:
        raise ProcfileError(str(exc)) from exc
