"""Verify stage: recompute an artifact's digest, check its encoding, its manifest link and its inputs.

The artifact is read by `runtime.artifact` (the runtime's own reader); the checks here report every
difference instead of stopping at the first, as the runtime does.

Findings are values (`Finding`); the CLI prints them and picks the exit code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime import artifact
from runtime.artifact import ArtifactError
from runtime.canonical import compute_digest, pretty_bytes
from runtime.model import KINDS, Input, ManifestLink, ProfileArtifact


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing that does not match: `what` names the check, `message` says what differs and how to fix it."""

    what: str  # "json" | "format" | "digest" | "encoding" | "manifest-link" | "input" | "deploy"
    message: str


@dataclass
class Verification:
    path: Path
    name: str  # as given on the command line
    kind: str | None = None
    digest: str | None = None
    findings: list[Finding] = field(default_factory=list)
    #: what was checked and matched, for the "ok" line
    checked: list[str] = field(default_factory=list)
    #: inputs named by the artifact that are not on disk (not an error: an artifact may travel alone)
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def _read(path: Path) -> tuple[bytes, dict[str, Any]] | Finding:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return Finding("io", f"cannot read: {exc.strerror or exc}")
    try:
        return raw, artifact.parse(raw, None)
    except ArtifactError as exc:
        return Finding("json", f"{exc}; run oneiric compile")


def _check_self(raw: bytes, data: dict[str, Any], out: Verification) -> None:
    try:
        out.kind = artifact.kind_of(data, out.name)
    except ArtifactError:
        out.findings.append(Finding("format", f"not an Oneiric artifact (format {data.get('format')!r}; expected "
                                              f"one of {', '.join(sorted(KINDS))})"))
        return
    out.digest = data.get("digest")
    computed = compute_digest(data)
    if out.digest != computed:
        out.findings.append(Finding("digest", f"digest mismatch: the file says {out.digest}, its content hashes to "
                                              f"{computed}; it was edited after compile: run oneiric compile"))
    else:
        out.checked.append("digest")
    if pretty_bytes(data) != raw:
        out.findings.append(Finding("encoding", "not in canonical encoding (sorted keys, 2-space indent, UTF-8, "
                                                "trailing newline): it was edited after compile: run oneiric compile"))
    else:
        out.checked.append("encoding")


def _check_link(path: Path, link: ManifestLink, out: Verification) -> None:
    if not link.path:
        out.findings.append(Finding("manifest-link", "the profile artifact has no manifest link"))
        return
    loaded = _read(path.parent / link.path)
    if isinstance(loaded, Finding):
        out.findings.append(Finding("manifest-link", f"manifest {link.path} (next to the profile): "
                                                     f"{loaded.message}"))
        return
    _, manifest = loaded
    stated, actual = manifest.get("digest"), compute_digest(manifest)
    if link.digest != actual:
        what = ("its content hashes to " + str(actual)) if stated == actual else \
            f"it says {stated} and its content hashes to {actual}"
        out.findings.append(Finding("manifest-link", f"manifest link: the profile pins {link.path} at "
                                                     f"{link.digest}, but {what}: run oneiric compile"))
    else:
        out.checked.append("manifest link")


def _check_inputs(path: Path, inputs: tuple[Input, ...], out: Verification) -> None:
    project = path.resolve().parent.parent
    matched = 0
    for item in inputs:
        try:
            actual = artifact.input_sha256(item, project)
        except OSError as exc:
            out.findings.append(Finding("input", f"input {item.path}: cannot read: {exc.strerror or exc}"))
            continue
        if actual is None:
            out.skipped.append(item.path)
        elif actual != item.sha256:
            out.findings.append(Finding("input", f"input {item.path} changed since compile (sha256 "
                                                 f"{item.sha256[:12]}... in the artifact, {actual[:12]}... "
                                                 f"on disk): run oneiric compile"))
        else:
            matched += 1
    if matched:
        out.checked.append(f"{matched} input(s)")


def verify_artifact(path: Path, name: str | None = None) -> Verification:
    """Every check for one artifact file; inputs are looked up under the parent of the artifact's directory."""
    out = Verification(path, name or path.as_posix())
    if path.suffix == ".yaml":  # the Cloud Run service and queue `deploy render` writes
        from compiler.deploy import verify_rendered

        out.kind = "deploy"
        out.digest, out.checked, problems = verify_rendered(path)
        out.findings.extend(Finding("deploy", message) for message in problems)
        return out
    loaded = _read(path)
    if isinstance(loaded, Finding):
        out.findings.append(loaded)
        return out
    raw, data = loaded
    _check_self(raw, data, out)
    if out.kind is None:
        return out
    try:
        decoded = artifact.decode(data, out.name)
    except ArtifactError as exc:
        out.findings.append(Finding("format", str(exc)))
        return out
    if isinstance(decoded, ProfileArtifact):
        _check_link(path, decoded.manifest, out)
    _check_inputs(path, decoded.inputs, out)
    return out


def report_text(results: list[Verification]) -> str:
    lines = []
    for r in results:
        if r.ok:
            extra = f"; not on disk, not checked: {', '.join(r.skipped)}" if r.skipped else ""
            lines.append(f"ok    {r.name} ({r.digest}): {', '.join(r.checked)}{extra}")
        else:
            for finding in r.findings:
                lines.append(f"FAIL  {r.name}: {finding.message}")
    bad = sum(1 for r in results if not r.ok)
    lines.append(f"{bad} of {len(results)} artifact(s) failed verification" if bad
                 else f"{len(results)} artifact(s) verified")
    return "\n".join(lines)


def report_json(results: list[Verification]) -> str:
    return json.dumps([{"path": r.name, "kind": r.kind, "digest": r.digest, "ok": r.ok, "checked": r.checked,
                        "skipped": r.skipped, "findings": [{"check": f.what, "message": f.message}
                                                           for f in r.findings]}
                       for r in results], indent=2, sort_keys=True)
