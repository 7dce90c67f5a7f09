"""Wires the compile stages for a project: load -> validate -> resolve -> emit (to bytes)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from compiler import deploy
from compiler.diagnostics import CompileError, Diagnostic, Document
from compiler.emit import encode
from compiler.project import load_project, load_settings, settings_for
from compiler.resolve import resolve
from runtime.locate import put_on_import_path
from runtime.model import replace


@dataclass
class BuildResult:
    files: dict[Path, bytes] = field(default_factory=dict)
    #: each file's artifact digest (what `compile` prints), taken as it was encoded
    digests: dict[Path, str] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.diagnostics


def build_project(root: Path, out_dir: Path, profiles: list[str] | None = None) -> BuildResult:
    """Artifacts for each requested profile (all profiles with a settings file when none is named)."""
    put_on_import_path(root)  # the project's own factories (mysvc.tasks:fetch) are checked from their source
    project = load_project(root)
    result = BuildResult()
    result.diagnostics.extend(project.errors)
    names = sorted(set(profiles)) if profiles else project.profile_names()
    result.profiles = names
    if project.errors:
        return result
    if not project.manifests:
        result.diagnostics.append(Diagnostic("project.no-manifests",
                                             f"no manifests found under {root.name or '.'}/deployment/manifests/*.yaml"))
        return result
    for name in names:
        settings = settings_for(project, name)
        if isinstance(settings, Diagnostic):
            result.diagnostics.append(settings)
            continue
        manifest_path = out_dir / f"{name}_manifest.json"

        def manifest_digest(manifest) -> str:  # encoded once: the profile pins this digest, the file holds it
            result.files[manifest_path], result.digests[manifest_path] = encode(manifest)
            return result.digests[manifest_path]

        try:
            resolved = resolve(name, settings, project.manifests, manifest_path.name, manifest_digest)
        except CompileError as exc:
            result.files.pop(manifest_path, None)
            result.digests.pop(manifest_path, None)
            result.diagnostics.extend(d for d in exc.diagnostics if d not in result.diagnostics)
            continue
        profile_path = out_dir / f"{name}_profile.json"
        result.files[profile_path], result.digests[profile_path] = encode(resolved.profile)
        try:  # a [deploy] table: the Cloud Run service and queue, rendered as `deploy render` last did
            profile = replace(resolved.profile, digest=result.digests[profile_path])
            for path, data in deploy.files_for_build(profile, out_dir, f"build/{profile_path.name}").items():
                result.files[path], result.digests[path] = data, "sha256:" + hashlib.sha256(data).hexdigest()
        except deploy.DeployError as exc:
            result.diagnostics.append(Diagnostic("deploy.render", str(exc), None, "/deploy"))
    result.diagnostics.sort(key=Diagnostic.sort_key)
    return result


def check_manifests(root: Path, manifests: list[Document], profiles: list[str] | None = None) -> list[Diagnostic]:
    """Every diagnostic `compile` would report for a project made of these manifests and root's settings files
    (each profile, or the built-in default when there are none): what `manifest validate` and `manifest pack`
    check, with compile's own stages, so a manifest they pass is one compile accepts."""
    put_on_import_path(root)  # as build_project: the project's own factories are checked from their source
    project = load_settings(root)
    if project.errors:
        return sorted(project.errors, key=Diagnostic.sort_key)
    out: list[Diagnostic] = []
    for name in sorted(set(profiles)) if profiles else project.profile_names():
        settings = settings_for(project, name)
        if isinstance(settings, Diagnostic):
            out.append(settings)
            continue
        try:
            resolve(name, settings, manifests, f"{name}_manifest.json", lambda manifest: "")
        except CompileError as exc:
            out.extend(d for d in exc.diagnostics if d not in out)
    return sorted(out, key=Diagnostic.sort_key)
