"""Verify stage: recompute an artifact's digest, check its encoding, its manifest link and its inputs.

Findings are values (`Finding`); the CLI prints them and picks the exit code.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.canonical import compute_digest, pretty_bytes
from runtime.model import MANIFEST_FORMAT, PROFILE_FORMAT

_KINDS = {MANIFEST_FORMAT: "manifest", PROFILE_FORMAT: "profile"}


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing that does not match: `what` names the check, `message` says what differs and how to fix it."""

    what: str  # "json" | "format" | "digest" | "encoding" | "manifest-link" | "input"
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


def _load(path: Path) -> tuple[bytes, Any] | Finding:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return Finding("io", f"cannot read: {exc.strerror or exc}")
    try:
        return raw, json.loads(raw)
    except ValueError as exc:
        return Finding("json", f"not valid JSON ({exc}): the file is damaged; run oneiric compile")


def _check_self(raw: bytes, data: Any, out: Verification) -> None:
    if not isinstance(data, dict) or data.get("format") not in _KINDS:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        out.findings.append(Finding("format", f"not an Oneiric artifact (format {got!r}; expected one of "
                                              f"{', '.join(sorted(_KINDS))})"))
        return
    out.kind = _KINDS[data["format"]]
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


def _check_link(path: Path, data: dict[str, Any], out: Verification) -> None:
    link = data.get("manifest")
    if not isinstance(link, dict) or not isinstance(link.get("path"), str):
        out.findings.append(Finding("manifest-link", "the profile artifact has no manifest link"))
        return
    target = path.parent / link["path"]
    loaded = _load(target)
    if isinstance(loaded, Finding):
        out.findings.append(Finding("manifest-link", f"manifest {link['path']} (next to the profile): "
                                                     f"{loaded.message}"))
        return
    _, manifest = loaded
    stated = manifest.get("digest") if isinstance(manifest, dict) else None
    actual = compute_digest(manifest) if isinstance(manifest, dict) else None
    if link.get("digest") != actual:
        what = ("its content hashes to " + str(actual)) if stated == actual else \
            f"it says {stated} and its content hashes to {actual}"
        out.findings.append(Finding("manifest-link", f"manifest link: the profile pins {link['path']} at "
                                                     f"{link.get('digest')}, but {what}: run oneiric compile"))
    else:
        out.checked.append("manifest link")


def _check_inputs(path: Path, data: dict[str, Any], out: Verification) -> None:
    project = path.resolve().parent.parent
    matched = 0
    for item in data.get("inputs") or []:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            out.findings.append(Finding("input", f"malformed inputs item {item!r}"))
            continue
        source = project / item["path"]
        try:
            actual = hashlib.sha256(source.read_bytes()).hexdigest()
        except FileNotFoundError:
            out.skipped.append(item["path"])
            continue
        except OSError as exc:
            out.findings.append(Finding("input", f"input {item['path']}: cannot read: {exc.strerror or exc}"))
            continue
        if actual != item.get("sha256"):
            out.findings.append(Finding("input", f"input {item['path']} changed since compile (sha256 "
                                                 f"{str(item.get('sha256'))[:12]}... in the artifact, {actual[:12]}... "
                                                 f"on disk): run oneiric compile"))
        else:
            matched += 1
    if matched:
        out.checked.append(f"{matched} input(s)")


def verify_artifact(path: Path, name: str | None = None) -> Verification:
    """Every check for one artifact file; inputs are looked up under the parent of the artifact's directory."""
    out = Verification(path, name or path.as_posix())
    loaded = _load(path)
    if isinstance(loaded, Finding):
        out.findings.append(loaded)
        return out
    raw, data = loaded
    _check_self(raw, data, out)
    if out.kind is None:
        return out
    if out.kind == "profile":
        _check_link(path, data, out)
    _check_inputs(path, data, out)
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
