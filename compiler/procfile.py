"""Procfile stage: render Procfile and Procfile.cloudrun from one template and the compiled profile artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compiler.templating import TemplateError, render_template
from runtime import artifact
from runtime.artifact import ArtifactError
from runtime.model import ProfileArtifact
from runtime.overrides import get_path

#: The profile the web process serves when none is named (SPEC section 1).
DEFAULT_PROFILE = "serverless"
#: Files written at the project root, all from the same template.
TARGETS = ("Procfile", "Procfile.cloudrun")
TEMPLATE = "Procfile.j2"


class ProcfileError(Exception):
    """The profile artifact is missing or unreadable, or the template failed to render."""


def load_profile(root: Path, name: str) -> tuple[str, ProfileArtifact]:
    """The compiled profile artifact, through the runtime's reader (not digest-checked: `compile --check`
    and `manifest verify` do that)."""
    rel = f"build/{name}_profile.json"
    if not (root / rel).is_file():
        raise ProcfileError(f"{rel} not found: run oneiric compile --profile {name} first")
    try:
        return rel, artifact.decode_profile(artifact.parse(artifact.read_bytes(root / rel, rel), rel), rel)
    except ArtifactError as exc:
        raise ProcfileError(f"{exc}: run oneiric compile") from exc


def context_for(rel: str, profile: ProfileArtifact, target: str) -> dict[str, Any]:
    return {
        "profile": profile.profile.name,
        "no_remote": not get_path(profile.settings, "remote.enabled", False),
        "target": target,
        "artifact": rel,
        "digest": profile.digest,
    }


def render_procfiles(root: Path, name: str, template: Path | None = None) -> dict[Path, bytes]:
    """The bytes of every target file, keyed by its path under `root`."""
    rel, profile = load_profile(root, name)
    try:
        return {root / target: render_template(TEMPLATE, template, **context_for(rel, profile, target)).encode("utf-8")
                for target in TARGETS}
    except TemplateError as exc:
        raise ProcfileError(str(exc)) from exc
