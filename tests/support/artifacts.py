"""Artifacts the compiler would refuse to write, made the honest way: a real compile of a tiny project,
then an edit re-digested and re-encoded with `runtime.canonical` (so only the edit is "hand-built").

Schema defaults, profile toggles and env-variable names all come from the compiler itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from runtime.canonical import compute_digest, pretty_bytes
from tests.support.cli import compile_in_process
from tests.support.projects import write_project

#: Settings of the tiny project: no secret references, no authentication (allowed on purpose), a fast supervisor.
TINY_SETTINGS = """\
[profile]
name = "{profile}"

[http]
tasks_auth = "none"
allow_unauthenticated_tasks = true

[runtime.supervisor]
poll_interval = 0.2
"""
TINY_MANIFEST = "source: test\nentries: []\n"


def write_artifact(path: Path, obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` with its digest recomputed, written in the canonical encoding; returns what was written."""
    obj = {k: v for k, v in obj.items() if k != "digest"}
    obj["digest"] = compute_digest(obj)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pretty_bytes(obj))
    return obj


def edit_artifact(path: Path, edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Apply `edit` to the artifact's JSON object in place, then rewrite it canonically with a fresh digest."""
    data = json.loads(path.read_bytes())
    edit(data)
    return write_artifact(path, data)


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def build_artifacts(project: Path, *, profile: str = "serverless", settings: dict[str, Any] | None = None,
                    selections: list[dict[str, Any]] | None = None, manifest_digest: str | None = None) -> Path:
    """The tiny project compiled for `profile` (serverless- or default-based), then edited: `settings` merged
    into the compiled settings, `selections` replacing the compiled ones, the manifest link pinned to
    `manifest_digest`. Returns the profile artifact's path."""
    write_project(project, TINY_MANIFEST, TINY_SETTINGS.format(profile=profile), profile=profile)
    compile_in_process(project, [profile])
    path = project / "build" / f"{profile}_profile.json"

    def edit(data: dict[str, Any]) -> None:
        if settings:
            _merge(data["settings"], settings)
        if selections is not None:
            data["selections"] = selections
        if manifest_digest is not None:
            data["manifest"]["digest"] = manifest_digest

    if settings or selections is not None or manifest_digest is not None:
        edit_artifact(path, edit)
    return path


def flip_byte(path: Path, needle: bytes) -> None:
    """Change the byte right after the first occurrence of `needle` (a letter inside a string value,
    so the file stays valid JSON and only the digest can tell)."""
    data = bytearray(path.read_bytes())
    at = data.index(needle) + len(needle)
    data[at] = ord("X") if data[at] != ord("X") else ord("Y")
    path.write_bytes(bytes(data))
