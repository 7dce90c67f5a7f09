"""Wires the compile stages for a project: load -> validate -> resolve -> emit (to bytes)."""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from compiler import deploy
from compiler.diagnostics import CompileError, Diagnostic, Document
from compiler.emit import encode
from compiler.project import load_project, load_settings, settings_for
from compiler.resolve import resolve
from runtime.canonical import DIGEST_PREFIX, sha256_file_bytes
from runtime.locate import put_on_import_path
from runtime.model import replace


@dataclass
class BuildResult:
    files: dict[Path, bytes] = field(default_factory=dict)
    #: each file's artifact digest (what `compile` prints), taken as it was encoded
    digests: dict[Path, str] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    #: every module a factory of the artifacts names: checks read their sources, so they are inputs of
    #: the build (compiler/incremental.py fingerprints them)
    factory_modules: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.diagnostics


@contextmanager
def collector_paused() -> Iterator[None]:
    """Keep the cyclic garbage collector from rescanning what a build creates, then restore it as it was.

    A build allocates a large graph that lives until it ends (data, positions, entries, artifacts);
    every full collection rescans all of it, which was 1.7 s of a 4 s 10k-entry compile (and finds no
    cycles to free). Scoped to the build: a long-lived process (the pytest fixture, a server) keeps its
    collector, and one whose collector was already off keeps it off.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build_project(root: Path, out_dir: Path, profiles: list[str] | None = None) -> BuildResult:
    """Artifacts for each requested profile (all profiles with a settings file when none is named)."""
    with collector_paused():
        return _build(root, out_dir, profiles)


def _build(root: Path, out_dir: Path, profiles: list[str] | None) -> BuildResult:
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
    seen: set[Diagnostic] = set()  # a finding several profiles report is listed once (a set: N findings, not N^2)
    for name in names:
        settings = settings_for(project, name)
        if isinstance(settings, Diagnostic):
            seen.add(settings)
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
            for d in exc.diagnostics:
                if d not in seen:
                    seen.add(d)
                    result.diagnostics.append(d)
            continue
        profile_path = out_dir / f"{name}_profile.json"
        result.files[profile_path], result.digests[profile_path] = encode(resolved.profile)
        result.factory_modules.update(e.factory.partition(":")[0] for e in resolved.manifest.entries)
        result.factory_modules.update(s.factory.partition(":")[0] for s in resolved.profile.selections)
        try:  # a [deploy] table: the Cloud Run service and queue, rendered as `deploy render` last did
            profile = replace(resolved.profile, digest=result.digests[profile_path])
            for path, data in deploy.files_for_build(profile, out_dir, f"build/{profile_path.name}").items():
                result.files[path], result.digests[path] = data, DIGEST_PREFIX + sha256_file_bytes(data)
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
    seen: set[Diagnostic] = set()
    for name in sorted(set(profiles)) if profiles else project.profile_names():
        settings = settings_for(project, name)
        if isinstance(settings, Diagnostic):
            seen.add(settings)
            out.append(settings)
            continue
        try:
            resolve(name, settings, manifests, f"{name}_manifest.json", lambda manifest: "")
        except CompileError as exc:
            for d in exc.diagnostics:
                if d not in seen:
                    seen.add(d)
                    out.append(d)
    return sorted(out, key=Diagnostic.sort_key)
