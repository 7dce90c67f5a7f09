"""Release-notes stage: gather what a deploy ticket needs from the compiled build, then render it with jinja2.

`build_notes()` reads the artifacts (and, on request, a live health probe and
the previous build) into plain data; `render()` only formats that data with a
template from compiler/templates/ or the team's own. Nothing here reads the
clock: the only time shown is SOURCE_DATE_EPOCH, when set.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from runtime.about import TEMPLATE_DIR, VERSION

TEMPLATE = "release.md.j2"
SUPERVISOR_PATH = "runtime.supervisor.enabled"
SUPERVISOR_ENV = "ONEIRIC_RUNTIME_SUPERVISOR__ENABLED"
#: Both spellings the runtime accepts (docs/artifacts.md), matched case-insensitively.
_SUPERVISOR_ENV_NAMES = (SUPERVISOR_ENV, "ONEIRIC_RUNTIME__SUPERVISOR__ENABLED")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
#: Changes listed per artifact before "... and N more".
DIFF_LIMIT = 40
PROBE_TIMEOUT = 120


class ReportError(Exception):
    """No artifacts to report, an unusable --against, or a template that failed."""


# ---------------------------------------------------------------- templates

def load_template(name: str, override: Path | None = None):
    """A jinja2 template: `name` from compiler/templates/, or the file `override`."""
    import jinja2

    directory, name = (override.resolve().parent, override.name) if override is not None else (TEMPLATE_DIR, name)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(directory)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, autoescape=False)
    env.filters["json"] = lambda value: json.dumps(value, sort_keys=True, ensure_ascii=False)
    env.filters["cell"] = lambda value: str(value).replace("|", "\\|").replace("\n", " ")
    try:
        return env.get_template(name)
    except jinja2.TemplateError as exc:
        raise ReportError(f"template {directory / name}: {exc}") from exc


def render(notes: "Notes", template: Path | None = None) -> str:
    import jinja2

    tpl = load_template(TEMPLATE, template)
    try:
        return tpl.render(notes=notes, profiles=notes.profiles)
    except jinja2.TemplateError as exc:
        raise ReportError(f"template {template or TEMPLATE}: {exc}") from exc


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
    adapters: list[dict[str, Any]]
    components: list[dict[str, Any]]
    workflows: list[dict[str, Any]]
    inputs: list[dict[str, Any]]
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

    @property
    def verified(self) -> bool:
        return all(v["ok"] for p in self.profiles for v in p.verification)


def _shown(path: Path, root: Path) -> str:
    from compiler.project import relative

    return relative(path, root)


def _env_value(environ: Mapping[str, str]) -> tuple[str, str] | None:
    for key, value in sorted(environ.items()):
        if key.upper() in _SUPERVISOR_ENV_NAMES:
            return key, value
    return None


def supervisor_notes(profile: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Which layer set runtime.supervisor.enabled: profile default, settings file, or the environment now."""
    settings = profile.get("settings") or {}
    value = ((settings.get("runtime") or {}).get("supervisor") or {}).get("enabled")
    provenance = (profile.get("provenance") or {}).get(SUPERVISOR_PATH, "schema default")
    if provenance.startswith("profile:"):
        layer = f"profile default ({provenance.removeprefix('profile:')})"
    elif provenance == "schema default":
        layer = "schema default"
    else:
        layer = f"settings file ({provenance})"
    notes: dict[str, Any] = {
        "path": SUPERVISOR_PATH,
        "compiled": value,
        "provenance": provenance,
        "layer": layer,
        "profile_default": ((profile.get("profile") or {}).get("toggles") or {}).get("supervisor_enabled"),
        "env_name": SUPERVISOR_ENV,
        "env": None,
        "effective": value,
        "decided_by": layer,
    }
    found = _env_value(environ)
    if found is not None:
        name, raw = found
        word = raw.strip().lower()
        parsed = True if word in _TRUE else False if word in _FALSE else None
        notes["env"] = {"name": name, "raw": raw, "parsed": parsed}
        if parsed is not None:
            notes["effective"] = parsed
            notes["decided_by"] = f"environment ({name}={raw})"
    return notes


def _workflows(profile: dict[str, Any], manifest: dict[str, Any] | None) -> list[dict[str, Any]]:
    entries = {(e.get("domain"), e.get("key"), e.get("provider")): e
               for e in (manifest or {}).get("entries", []) if isinstance(e, dict)}
    queue_category = (((profile.get("settings") or {}).get("workflows") or {}).get("options") or {}).get(
        "queue_category")
    out = []
    for sel in profile.get("selections") or []:
        if sel.get("domain") != "workflow":
            continue
        entry = entries.get(("workflow", sel.get("key"), sel.get("provider"))) or {}
        scheduler = (entry.get("metadata") or {}).get("scheduler") or {}
        nodes = [{"id": n.get("id"), "task": n.get("task"), "depends_on": list(n.get("depends_on") or []),
                  "attempts": (n.get("retry_policy") or {}).get("attempts")}
                 for n in ((entry.get("dag") or {}).get("nodes") or [])]
        out.append({"key": sel.get("key"), "provider": sel.get("provider"), "factory": sel.get("factory"),
                    "origin": sel.get("origin"), "nodes": nodes,
                    "queue_category": scheduler.get("queue_category") or queue_category,
                    "queue_provider": scheduler.get("provider")})
    return out


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

def _previous(against: str, build: Path, name: str, profile_files: int) -> tuple[str, dict | None, dict | None, str]:
    """(label, previous profile, previous manifest, note) for one profile."""
    from compiler.diff import DiffInputError, parse_artifact as parse, read_spec

    target = Path(against)
    profile_name = f"{name}_profile.json"
    try:
        if target.is_dir() or target.is_file():
            if target.is_dir():
                profile_path = target / profile_name
                if not profile_path.is_file():
                    return against, None, None, f"no {profile_name} in {against}"
            else:
                profile_path = target
            old_profile = parse(profile_path.read_bytes(), str(profile_path))
            if target.is_file() and (old_profile.get("profile") or {}).get("name") != name and profile_files > 1:
                other = (old_profile.get("profile") or {}).get("name")
                return against, None, None, f"{against} is the {other} profile"
            link = (old_profile.get("manifest") or {}).get("path")
            manifest_path = profile_path.parent / link if link else None
            old_manifest = parse(manifest_path.read_bytes(), str(manifest_path)) \
                if manifest_path is not None and manifest_path.is_file() else None
            note = "" if old_manifest is not None else f"the previous manifest {link} was not found"
            return against, old_profile, old_manifest, note
        old_profile = parse(read_spec(f"{against}:./{profile_name}", cwd=build), f"{against}:{profile_name}")
        link = (old_profile.get("manifest") or {}).get("path") or f"{name}_manifest.json"
        try:
            old_manifest = parse(read_spec(f"{against}:./{link}", cwd=build), f"{against}:{link}")
            note = ""
        except DiffInputError as exc:
            old_manifest, note = None, str(exc)
        return f"git revision {against}", old_profile, old_manifest, note
    except (DiffInputError, OSError) as exc:
        return against, None, None, f"no previous build of profile {name}: {exc}"


def _check_against(against: str, build: Path) -> None:
    if Path(against).exists():
        return
    try:
        proc = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{against}^{{commit}}"], cwd=build,
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReportError(f"--against {against}: cannot run git: {exc}") from exc
    if proc.returncode != 0:
        raise ReportError(f"--against {against}: not a directory, an artifact file or a git revision")


def _changes(old: dict | None, new: dict, old_name: str, new_name: str) -> dict[str, Any] | None:
    from compiler.diff import KINDS, DiffInputError, Side, diff_artifacts

    if old is None:
        return None
    try:
        result = diff_artifacts(Side(old_name, old, KINDS.get(old.get("format"), "?")),
                                Side(new_name, new, KINDS.get(new.get("format"), "?")))
    except DiffInputError as exc:
        return {"same": False, "error": str(exc), "changes": [], "more": 0, "total": 0}
    changes = [{"op": c.op, "path": c.path, "old": c.old, "new": c.new, "old_provenance": c.old_provenance,
                "new_provenance": c.new_provenance, "moved": c.moved} for c in result.changes]
    return {"same": result.same, "error": None, "old_digest": old.get("digest"), "new_digest": new.get("digest"),
            "changes": changes[:DIFF_LIMIT], "more": max(0, len(changes) - DIFF_LIMIT), "total": len(changes)}


# ---------------------------------------------------------------- assembling

def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: unreadable artifact ({exc}): run oneiric compile") from exc
    if not isinstance(data, dict):
        raise ReportError(f"{path}: not an artifact")
    return data


def profile_notes(root: Path, build: Path, name: str, *, against: str | None, probe: bool, demo: bool,
                  environ: Mapping[str, str], profile_files: int) -> ProfileNotes:
    profile_path = build / f"{name}_profile.json"
    if not profile_path.is_file():
        raise ReportError(f"{_shown(profile_path, root)} not found: run oneiric compile --profile {name}")
    profile = _read(profile_path)
    link = profile.get("manifest") or {}
    manifest_path = profile_path.parent / link.get("path", f"{name}_manifest.json")
    manifest = _read(manifest_path) if manifest_path.is_file() else None
    settings = profile.get("settings") or {}
    provenance = profile.get("provenance") or {}
    selections = profile.get("selections") or []
    secrets = {
        "provider": (settings.get("secrets") or {}).get("provider"),
        "provenance": provenance.get("secrets.provider", "schema default"),
        "references": [{"ref": s.get("ref"), "name": s.get("name"), "version": s.get("version"),
                        "used_by": list(s.get("used_by") or [])} for s in profile.get("secrets") or []],
    }
    shown_profile, shown_manifest = _shown(profile_path, root), _shown(manifest_path, root)
    notes = ProfileNotes(
        name=name,
        artifact=shown_profile,
        digest=profile.get("digest", ""),
        manifest_artifact=shown_manifest,
        manifest_digest=(manifest or {}).get("digest", link.get("digest", "")),
        compiler_version=profile.get("compiler_version", ""),
        sources=list((manifest or {}).get("sources") or []),
        base=(profile.get("profile") or {}).get("base", ""),
        extends=list((profile.get("profile") or {}).get("extends") or []),
        toggles=dict(sorted(((profile.get("profile") or {}).get("toggles") or {}).items())),
        supervisor=supervisor_notes(profile, environ),
        secrets=secrets,
        adapters=[s for s in selections if s.get("domain") == "adapter"],
        components=[s for s in selections if s.get("domain") not in ("adapter", "workflow")],
        workflows=_workflows(profile, manifest),
        inputs=sorted(profile.get("inputs") or [], key=lambda i: (i.get("path", ""), i.get("kind", ""))),
        verification=_verify([(profile_path, shown_profile)] + ([(manifest_path, shown_manifest)] if manifest else [])),
    )
    if manifest is None:
        notes.verification.append({"artifact": shown_manifest, "ok": False, "checked": [], "skipped": [],
                                   "findings": ["not found: run oneiric compile"]})
    if probe:
        notes.probe = run_probe(root, name, profile_path, demo, environ)
    if against is not None:
        label, old_profile, old_manifest, note = _previous(against, build, name, profile_files)
        notes.diff = {
            "against": label,
            "note": note,
            "profile": _changes(old_profile, profile, f"previous {name}_profile.json", shown_profile),
            "manifest": _changes(old_manifest, manifest, f"previous {link.get('path')}", shown_manifest)
            if manifest is not None else None,
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
    if against is not None:
        _check_against(against, build)
    epoch = environ.get("SOURCE_DATE_EPOCH")
    generated = None
    if epoch:
        try:
            generated = datetime.fromtimestamp(int(epoch), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (ValueError, OverflowError, OSError) as exc:
            raise ReportError(f"SOURCE_DATE_EPOCH={epoch!r} is not a Unix timestamp") from exc
    notes = Notes(compiler_version=VERSION, generated_at=generated,
                  against=against, probed=probe)
    for name in names:
        notes.profiles.append(profile_notes(root, build, name, against=against, probe=probe, demo=demo,
                                            environ=environ, profile_files=len(names)))
    return notes
