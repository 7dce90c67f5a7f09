"""Release-notes stage: gather what a deploy ticket needs from the compiled build, then render it with jinja2.

`build_notes()` reads the artifacts (and, on request, a live health probe and
the previous build) into plain data; `render()` only formats that data with a
template from compiler/templates/ or the team's own. Nothing here reads the
clock: the only time shown is SOURCE_DATE_EPOCH, when set.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from compiler.templating import TemplateError, render_template
from runtime import artifact
from runtime.about import VERSION
from runtime.artifact import ArtifactError
from runtime.model import Input, ManifestArtifact, ProfileArtifact, Selection, as_dict
from runtime.overrides import get_path
from runtime.settings import SUPERVISOR_ENV, SUPERVISOR_PATH, SupervisorDecision

TEMPLATE = "release.md.j2"
#: Changes listed per artifact before "... and N more".
DIFF_LIMIT = 40
PROBE_TIMEOUT = 120


class ReportError(Exception):
    """No artifacts to report, an unusable --against, or a template that failed."""


def render(notes: "Notes", template: Path | None = None) -> str:
    """The notes formatted with compiler/templates/release.md.j2 or the team's own `template`."""
    try:
        return render_template(TEMPLATE, template, notes=notes, profiles=notes.profiles)
    except TemplateError as exc:
        raise ReportError(str(exc)) from exc


# ---------------------------------------------------------------- data

@dataclass
class ProfileNotes:
    name: str
    artifact: str
    digest: str
    manifest_artifact: str
    manifest_digest: str
    compiler_version: str
    sources: list[str]
    base: str
    extends: list[str]
    toggles: dict[str, Any]
    supervisor: dict[str, Any]
    secrets: dict[str, Any]
    adapters: list[Selection]
    components: list[Selection]
    workflows: list[dict[str, Any]]
    inputs: list[Input]
    verification: list[dict[str, Any]]
    probe: dict[str, Any] | None = None
    diff: dict[str, Any] | None = None


@dataclass
class Notes:
    compiler_version: str
    generated_at: str | None
    against: str | None
    probed: bool
    profiles: list[ProfileNotes] = field(default_factory=list)
    #: the full commit hash `against` resolved to (None for a directory or a file)
    against_commit: str | None = None

    @property
    def verified(self) -> bool:
        return all(v["ok"] for p in self.profiles for v in p.verification)


def _shown(path: Path, root: Path) -> str:
    from compiler.project import relative

    return relative(path, root)


def supervisor_notes(profile: ProfileArtifact, environ: Mapping[str, str]) -> dict[str, Any]:
    """Which layer set runtime.supervisor.enabled (runtime.settings decides, as `supervisor-info` does),
    worded for the release notes."""
    decision = SupervisorDecision(profile, environ)
    provenance = decision.provenance
    if provenance.startswith("profile:"):
        layer = f"profile default ({provenance.removeprefix('profile:')})"
    elif provenance == "schema default":
        layer = "schema default"
    else:
        layer = f"settings file ({provenance})"
    notes: dict[str, Any] = {
        "path": SUPERVISOR_PATH,
        "compiled": decision.compiled,
        "provenance": provenance,
        "layer": layer,
        "profile_default": profile.profile.toggles.supervisor_enabled,
        "env_name": SUPERVISOR_ENV,
        "env": None,
        "effective": decision.value,
        "decided_by": layer,
    }
    if decision.env_name is not None:
        notes["env"] = {"name": decision.env_name, "raw": decision.env_raw, "parsed": decision.env_value}
        if decision.layer == "env_override":
            notes["decided_by"] = f"environment ({decision.env_name}={decision.env_raw})"
    return notes


def _workflows(profile: ProfileArtifact, manifest: ManifestArtifact | None) -> list[dict[str, Any]]:
    entries = {(e.domain, e.key, e.provider): e for e in (manifest.entries if manifest else ())}
    queue_category = get_path(profile.settings, "workflows.options.queue_category")
    out = []
    for sel in profile.selections:
        if sel.domain != "workflow":
            continue
        entry = entries.get(("workflow", sel.key, sel.provider))
        scheduler = (entry.metadata.get("scheduler") if entry else None) or {}
        nodes = [{"id": n.id, "task": n.task, "depends_on": list(n.depends_on), "attempts": n.retry_policy.attempts}
                 for n in (entry.dag.nodes if entry and entry.dag else ())]
        out.append({"key": sel.key, "provider": sel.provider, "factory": sel.factory, "origin": sel.origin,
                    "nodes": nodes, "queue_category": scheduler.get("queue_category") or queue_category,
                    "queue_provider": scheduler.get("provider"), "mermaid": mermaid_dag(nodes)})
    return out


def mermaid_dag(nodes: list[dict[str, Any]]) -> list[str]:
    """The workflow's DAG as Mermaid `graph LR` lines (GitHub draws it in the review). Node ids become
    n0, n1, ... so any id is safe; the label shows the id, and the task when it differs."""
    ids = {node["id"]: f"n{i}" for i, node in enumerate(nodes)}

    def label(node: dict[str, Any]) -> str:
        text = node["id"] if node["task"] == node["id"] else f"{node['id']}<br/>task {node['task']}"
        return text.replace('"', "#quot;")

    lines = ["graph LR"]
    lines += [f'    {ids[n["id"]]}["{label(n)}"]' for n in nodes]
    lines += [f"    {ids[d]} --> {ids[n['id']]}" for n in nodes for d in n["depends_on"] if d in ids]
    return lines


def _verify(paths: list[tuple[Path, str]]) -> list[dict[str, Any]]:
    from compiler.verify import verify_artifact

    out = []
    for path, shown in paths:
        result = verify_artifact(path, shown)
        out.append({"artifact": shown, "ok": result.ok, "checked": result.checked, "skipped": result.skipped,
                    "findings": [f.message for f in result.findings]})
    return out


# ---------------------------------------------------------------- probe

def run_probe(root: Path, name: str, profile_path: Path, demo: bool, environ: Mapping[str, str]) -> dict[str, Any]:
    """`oneiric health --probe --json` for one profile, as a subprocess; never raises."""
    globals_ = ["--demo", "--profile", name] if demo else ["--config", str(profile_path.resolve()), "--profile", name]
    cmd = [sys.executable, "-m", "oneiric.cli", *globals_, "health", "--probe", "--json"]
    shown = f"python -m oneiric.cli {'--demo ' if demo else ''}--profile {name} health --probe --json"
    try:
        proc = subprocess.run(cmd, cwd=root, env=dict(environ), capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {"available": False, "command": shown, "detail": f"timed out after {PROBE_TIMEOUT}s"}
    except OSError as exc:
        return {"available": False, "command": shown, "detail": f"cannot run: {exc}"}
    try:
        record = json.loads(proc.stdout)
    except ValueError:
        record = None
    if not isinstance(record, dict) or "status" not in record:
        lines = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        return {"available": False, "command": shown, "exit_code": proc.returncode,
                "detail": (lines[-1] if lines else f"no output (exit {proc.returncode})")[:300]}
    secrets = record.get("secrets") or {}
    lifecycle = record.get("lifecycle_state") or {}
    return {
        "available": True,
        "command": shown,
        "exit_code": proc.returncode,
        "status": record.get("status"),
        "secrets": {"provider": secrets.get("provider"), "status": secrets.get("status"),
                    "detail": secrets.get("detail"), "missing": list(secrets.get("missing") or [])},
        "activity_state": lifecycle.get("activity_state"),
        "supervisor_enabled": (lifecycle.get("supervisor") or {}).get("enabled"),
        "adapters": {key: value.get("status") for key, value in sorted((record.get("adapters") or {}).items())
                     if isinstance(value, dict)},
    }


# ---------------------------------------------------------------- previous build

def _read_previous(spec: str, name: str, build: Path) -> dict[str, Any]:
    """A previous artifact's JSON object: a file, or REV:PATH read from git (diff.read_spec)."""
    from compiler.diff import read_spec

    return artifact.parse(read_spec(spec, cwd=build), name)


def _previous(against: str, build: Path, name: str, profile_files: int) -> tuple[str, dict | None, dict | None, str]:
    """(label, previous profile, previous manifest, note) for one profile: `against` is a directory of
    artifacts, one profile artifact, or a git revision."""
    from compiler.diff import DiffInputError

    target = Path(against)
    profile_name = f"{name}_profile.json"
    on_disk = target.is_dir() or target.is_file()
    if target.is_dir():
        profile_path = target / profile_name
        if not profile_path.is_file():
            return against, None, None, f"no {profile_name} in {against}"
        base, spec, label = profile_path.parent, str(profile_path), against
    elif on_disk:
        base, spec, label = target.parent, str(target), against
    else:
        base, spec, label = None, f"{against}:./{profile_name}", f"git revision {against}"
    try:
        old_profile = _read_previous(spec, spec if on_disk else f"{against}:{profile_name}", build)
        old = artifact.decode_profile(old_profile, spec)
    except (DiffInputError, ArtifactError, OSError) as exc:
        return against, None, None, f"no previous build of profile {name}: {exc}"
    if target.is_file() and old.profile.name != name and profile_files > 1:
        return against, None, None, f"{against} is the {old.profile.name} profile"
    link = old.manifest.path or f"{name}_manifest.json"
    manifest_spec = str(base / link) if base is not None else f"{against}:./{link}"
    if base is not None and not (base / link).is_file():
        return label, old_profile, None, f"the previous manifest {link} was not found"
    try:
        return label, old_profile, _read_previous(manifest_spec, manifest_spec if base else f"{against}:{link}",
                                                  build), ""
    except (DiffInputError, ArtifactError, OSError) as exc:
        return label, old_profile, None, str(exc)


def resolve_against(against: str, build: Path) -> str | None:
    """The full commit hash `against` names (None for a directory or an artifact file), so the notes say
    exactly which build they compare with and every read uses that one commit, whatever HEAD does meanwhile."""
    if Path(against).exists():
        return None
    try:
        proc = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{against}^{{commit}}"], cwd=build,
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReportError(f"--against {against}: cannot run git: {exc}") from exc
    if proc.returncode != 0:
        raise ReportError(f"--against {against}: not a directory, an artifact file or a git revision")
    return proc.stdout.strip()


def _selection_paths(profile: dict[str, Any]) -> dict[str, str]:
    """`domain/key/provider` -> the settings path its `settings` mirror (adapters.provider_settings.X)."""
    out = {}
    for sel in profile.get("selections") or []:
        if isinstance(sel, dict) and sel.get("settings_path"):
            out[f"{sel.get('domain')}/{sel.get('key')}/{sel.get('provider')}"] = sel["settings_path"]
    return out


_SELECTION_SETTING = re.compile(r"^\$\.selections\[(?P<sel>[^\]]+)\]\.settings\.(?P<leaf>.+)$")


def _once(changes: list[dict[str, Any]], selection_paths: Mapping[str, str]) -> list[dict[str, Any]]:
    """Drop a selection's copy of a provider-setting change: the artifact holds the value twice (under
    `settings` and in the selection), the change is one, listed at the settings path (with its provenance)."""
    by_path = {c["path"]: c for c in changes}
    out = []
    for change in changes:
        match = _SELECTION_SETTING.match(change["path"])
        base = selection_paths.get(match["sel"]) if match else None
        twin = by_path.get(f"$.settings.{base}.{match['leaf']}") if base else None
        if twin is not None and (twin["op"], twin["old"], twin["new"]) == (change["op"], change["old"], change["new"]):
            continue
        out.append(change)
    return out


def _changes(old: dict | None, new: dict, old_name: str, new_name: str,
             selection_paths: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    from compiler.diff import DiffInputError, change_dict, diff_artifacts, side_of_data

    if old is None:
        return None
    try:
        result = diff_artifacts(side_of_data(old, old_name), side_of_data(new, new_name))
    except DiffInputError as exc:
        return {"same": False, "error": str(exc), "changes": [], "more": 0, "total": 0}
    changes = _once([change_dict(c) for c in result.changes], selection_paths or {})
    return {"same": result.same, "error": None, "old_digest": old.get("digest"), "new_digest": new.get("digest"),
            "changes": changes[:DIFF_LIMIT], "more": max(0, len(changes) - DIFF_LIMIT), "total": len(changes)}


# ---------------------------------------------------------------- assembling

def _read(path: Path, root: Path) -> tuple[dict[str, Any], Any]:
    """(JSON object, model object) of a compiled artifact, through the runtime's reader."""
    shown = _shown(path, root)
    try:
        data = artifact.parse(artifact.read_bytes(path, shown), shown)
        return data, artifact.decode(data, shown)
    except ArtifactError as exc:
        raise ReportError(f"{exc}: run oneiric compile") from exc


def profile_notes(root: Path, build: Path, name: str, *, against: str | None, probe: bool, demo: bool,
                  environ: Mapping[str, str], profile_files: int, against_label: str | None = None) -> ProfileNotes:
    profile_path = build / f"{name}_profile.json"
    if not profile_path.is_file():
        raise ReportError(f"{_shown(profile_path, root)} not found: run oneiric compile --profile {name}")
    profile_data, profile = _read(profile_path, root)
    if not isinstance(profile, ProfileArtifact):
        raise ReportError(f"{_shown(profile_path, root)}: not a profile artifact: run oneiric compile")
    manifest_path = profile_path.parent / (profile.manifest.path or f"{name}_manifest.json")
    manifest_data, manifest = _read(manifest_path, root) if manifest_path.is_file() else (None, None)
    secrets = {
        "provider": get_path(profile.settings, "secrets.provider"),
        "provenance": profile.provenance.get("secrets.provider", "schema default"),
        "references": list(profile.secrets),
    }
    shown_profile, shown_manifest = _shown(profile_path, root), _shown(manifest_path, root)
    notes = ProfileNotes(
        name=name,
        artifact=shown_profile,
        digest=profile.digest,
        manifest_artifact=shown_manifest,
        manifest_digest=manifest.digest if manifest else profile.manifest.digest,
        compiler_version=profile.compiler_version,
        sources=list(manifest.sources) if manifest else [],
        base=profile.profile.base,
        extends=list(profile.profile.extends),
        toggles=dict(sorted(as_dict(profile.profile.toggles).items())),
        supervisor=supervisor_notes(profile, environ),
        secrets=secrets,
        adapters=[s for s in profile.selections if s.domain == "adapter"],
        components=[s for s in profile.selections if s.domain not in ("adapter", "workflow")],
        workflows=_workflows(profile, manifest),
        inputs=sorted(profile.inputs, key=lambda i: (i.path, i.kind)),
        verification=_verify([(profile_path, shown_profile)] + ([(manifest_path, shown_manifest)] if manifest else [])),
    )
    if manifest is None:
        notes.verification.append({"artifact": shown_manifest, "ok": False, "checked": [], "skipped": [],
                                   "findings": ["not found: run oneiric compile"]})
    if probe:
        notes.probe = run_probe(root, name, profile_path, demo, environ)
    if against is not None:
        label, old_profile, old_manifest, note = _previous(against, build, name, profile_files)
        if against_label is not None and against_label != against:
            label = f"git revision {against_label} ({against})"
        notes.diff = {
            "against": label,
            "note": note,
            "profile": _changes(old_profile, profile_data, f"previous {name}_profile.json", shown_profile,
                                _selection_paths(profile_data)),
            "manifest": _changes(old_manifest, manifest_data, f"previous {profile.manifest.path}", shown_manifest)
            if manifest_data is not None else None,
        }
    return notes


def build_notes(root: Path, build: Path, names: list[str] | None, *, against: str | None = None,
                probe: bool = False, demo: bool = False, environ: Mapping[str, str] | None = None) -> Notes:
    """Notes for each named profile (default: every `*_profile.json` in `build`)."""
    environ = {} if environ is None else environ
    if names is None:
        names = sorted(p.name.removesuffix("_profile.json") for p in build.glob("*_profile.json"))
        if not names:
            raise ReportError(f"no compiled profiles in {_shown(build, root)}: run oneiric compile")
    commit = resolve_against(against, build) if against is not None else None
    epoch = environ.get("SOURCE_DATE_EPOCH")
    generated = None
    if epoch:
        try:
            generated = datetime.fromtimestamp(int(epoch), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (ValueError, OverflowError, OSError) as exc:
            raise ReportError(f"SOURCE_DATE_EPOCH={epoch!r} is not a Unix timestamp") from exc
    notes = Notes(compiler_version=VERSION, generated_at=generated,
                  against=against, probed=probe, against_commit=commit)
    for name in names:
        notes.profiles.append(profile_notes(root, build, name, against=commit or against, probe=probe, demo=demo,
                                            environ=environ, profile_files=len(names), against_label=against))
    return notes
