"""Diff stage: the semantic difference between two compiled artifacts of the same kind.

Entries and selections are matched by identity (`domain/key/provider`), other
lists of objects by `id`, `ref`, `name` or `path`; order is ignored. Objects
are compared key by key, everything else as a whole value. A changed settings
value carries the provenance of both sides (which file and line set it).
The top-level `digest` is not compared: it follows from the rest, and a
reordering that changes it is not a semantic change.

Artifacts are read by `runtime.artifact` (JSON object, known format) but compared as JSON, not decoded
into the model: decoding a 10,000-entry manifest costs about 0.25 s a side, a quarter of the budget.

Equal subtrees are skipped with Python's `==` (that is what keeps 10,000
entries well under a second), so a value that only changes between `1`,
`1.0` and `true` deep inside an otherwise equal object is not reported;
the artifacts' schemas keep such types fixed.
"""

from __future__ import annotations

import json
import re
import subprocess
from operator import itemgetter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from runtime import artifact
from runtime.artifact import ArtifactError

#: Fields that identify an object inside a list, tried in order.
_IDENTITIES: tuple[tuple[str, ...], ...] = (("domain", "key", "provider"), ("id",), ("ref",), ("name",), ("path",))

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


class DiffInputError(Exception):
    """An artifact could not be read or the two cannot be compared (a usage error, exit 2)."""


# ---------------------------------------------------------------- reading

@dataclass(frozen=True, slots=True)
class Side:
    """One artifact being compared: its display name, parsed data and kind."""

    name: str
    data: dict[str, Any]
    kind: str


def read_spec(spec: str, cwd: Path | None = None) -> bytes:
    """Bytes of `spec`: a file path, or `REV:PATH` read with `git show` (PATH as git reads it)."""
    path = Path(spec)
    if path.is_file():
        try:
            return path.read_bytes()
        except OSError as exc:
            raise DiffInputError(f"{spec}: cannot read: {exc.strerror or exc}") from exc
    rev, sep, rel = spec.partition(":")
    if not sep or not rev or not rel:
        raise DiffInputError(f"{spec}: no such file (to read a file from git, write REV:PATH, e.g. HEAD~1:{spec})")
    try:
        proc = subprocess.run(["git", "show", f"{rev}:{rel}"], cwd=cwd, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DiffInputError(f"{spec}: cannot run git: {exc}") from exc
    if proc.returncode != 0:
        detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise DiffInputError(f"{spec}: git show failed: {detail[-1] if detail else 'exit ' + str(proc.returncode)}")
    return proc.stdout


def side_of_data(data: dict[str, Any], name: str) -> Side:
    """A parsed artifact as one side (its kind by `runtime.artifact.kind_of`), or DiffInputError."""
    try:
        return Side(name, data, artifact.kind_of(data, name))
    except ArtifactError as exc:
        raise DiffInputError(str(exc)) from None


def load_side(spec: str, cwd: Path | None = None, raw: bytes | None = None) -> Side:
    """One side read by the runtime's reader (a JSON object of a known format), or DiffInputError."""
    try:
        data = artifact.parse(read_spec(spec, cwd) if raw is None else raw, spec)
    except ArtifactError as exc:
        raise DiffInputError(str(exc)) from None
    return side_of_data(data, spec)


def load_pair(old: str, new: str, cwd: Path | None = None) -> tuple[Side, Side]:
    """Both sides; byte-identical files are parsed once."""
    old_raw, new_raw = read_spec(old, cwd), read_spec(new, cwd)
    left = load_side(old, cwd, old_raw)
    if new_raw == old_raw:
        return left, Side(new, left.data, left.kind)
    return left, load_side(new, cwd, new_raw)


# ---------------------------------------------------------------- comparing

@dataclass(frozen=True, slots=True)
class Change:
    """One difference. `path` is JSONPath-like: `$.entries[adapter/vector/pgvector].priority`."""

    op: str  # "added" | "removed" | "changed"
    path: str
    old: Any = None
    new: Any = None
    #: where each side's value came from ("config/x.toml:12:1", "schema default", an entry's source), if known
    old_provenance: str | None = None
    new_provenance: str | None = None
    #: the value is unchanged and only its origin moved (a provenance-only change)
    moved: bool = False


@dataclass
class DiffResult:
    old: Side
    new: Side
    changes: list[Change] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not self.changes


def key_token(key: str) -> str:
    return f".{key}" if _PLAIN_KEY.match(key) else f"[{key!r}]"


def identity(item: dict[str, Any], fields: tuple[str, ...]) -> str:
    return "/".join(str(item[f]) for f in fields)


def _identities(items: list[dict[str, Any]], fields: tuple[str, ...]) -> dict[str, Any]:
    """Items by identity; the common all-strings case at C speed."""
    if len(fields) == 1:
        (name,) = fields
        try:
            return {item[name]: item for item in items} if all(type(i[name]) is str for i in items) else \
                {str(item[name]): item for item in items}
        except TypeError:
            return {str(item[name]): item for item in items}
    get = itemgetter(*fields)
    try:
        return {"/".join(get(item)): item for item in items}
    except TypeError:  # a non-string identity field
        return {identity(item, fields): item for item in items}


def _keyed(old: list[Any], new: list[Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Both lists by identity, when every item is an object carrying identity fields unique on its side."""
    items = old + new
    if not items or not all(type(item) is dict for item in items):
        return None
    for fields in _IDENTITIES:
        wanted = frozenset(fields)
        if all(wanted <= item.keys() for item in items):
            left = _identities(old, fields)
            right = _identities(new, fields)
            if len(left) == len(old) and len(right) == len(new):
                return left, right
    return None


def compare(old: Any, new: Any, path: str = "$") -> Iterator[Change]:
    """Changes from `old` to `new`, sorted by key and identity; equal subtrees are skipped at C speed."""
    if old == new and type(old) is type(new):
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            sub = path + key_token(key)
            if key not in new:
                yield Change("removed", sub, old=old[key])
            elif key not in old:
                yield Change("added", sub, new=new[key])
            else:
                yield from compare(old[key], new[key], sub)
        return
    if isinstance(old, list) and isinstance(new, list):
        keyed = _keyed(old, new)
        if keyed is not None:
            left, right = keyed
            for ident in sorted(left.keys() | right.keys()):
                if ident in left and ident in right and left[ident] == right[ident]:
                    continue
                sub = f"{path}[{ident}]"
                if ident not in right:
                    yield Change("removed", sub, old=left[ident])
                elif ident not in left:
                    yield Change("added", sub, new=right[ident])
                else:
                    yield from compare(left[ident], right[ident], sub)
            return
    yield Change("changed", path, old=old, new=new)


# ---------------------------------------------------------------- provenance

def _settings_provenance(provenance: dict[str, str], dotted: str) -> str | None:
    """Provenance of a dotted settings path, or of its nearest ancestor that has one."""
    probe = dotted
    while probe:
        if probe in provenance:
            return provenance[probe]
        probe = probe.rpartition(".")[0]
    return None


_SETTINGS_PATH = re.compile(r"^\$\.settings((?:\.[A-Za-z_][A-Za-z0-9_-]*|\['[^']*'\])+)")
_SELECTION_PATH = re.compile(r"^\$\.selections\[([^\]]+)\]\.settings((?:\.[A-Za-z_][A-Za-z0-9_-]*|\['[^']*'\])+)")
_ENTRY_PATH = re.compile(r"^\$\.entries\[([^\]]+)\]")
_TOKEN = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\['([^']*)'\]")


def _dotted(tokens: str) -> str:
    return ".".join(a or b for a, b in _TOKEN.findall(tokens))


def _provenance_of(data: dict[str, Any], path: str, index: "_LazyIndex") -> tuple[str | None, str | None]:
    """(provenance, settings key) of the value at `path` on one side."""
    provenance = data.get("provenance") if isinstance(data.get("provenance"), dict) else {}
    match = _SETTINGS_PATH.match(path)
    if match:
        dotted = _dotted(match.group(1))
        return _settings_provenance(provenance, dotted), dotted
    match = _SELECTION_PATH.match(path)
    if match:
        selection = index.get("selections", {}).get(match.group(1))
        if selection and selection.get("settings_path"):
            dotted = selection["settings_path"] + "." + _dotted(match.group(2))
            return _settings_provenance(provenance, dotted), dotted
        return None, None
    match = _ENTRY_PATH.match(path)
    if match:
        entry = index.get("entries", {}).get(match.group(1))
        return (entry.get("source") or None) if entry else None, None
    return None, None


class _LazyIndex:
    """Entries and selections of one side by identity, built on first use (most diffs never need it)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data
        self._built: dict[str, dict[str, Any]] = {}

    def get(self, name: str, default: Any = None) -> dict[str, Any]:
        if name not in self._built:
            items = self._data.get(name)
            wanted = frozenset(_IDENTITIES[0])
            usable = [i for i in items if type(i) is dict and wanted <= i.keys()] if isinstance(items, list) else []
            self._built[name] = _identities(usable, _IDENTITIES[0])
        return self._built[name]


def diff_artifacts(old: Side, new: Side) -> DiffResult:
    """Every semantic change from `old` to `new`; raises DiffInputError when the kinds differ."""
    if old.kind != new.kind:
        raise DiffInputError(f"cannot compare a {old.kind} artifact ({old.name}) with a {new.kind} artifact "
                             f"({new.name}): diff two manifests or two profiles")
    result = DiffResult(old, new)
    left = {k: v for k, v in old.data.items() if k not in ("digest", "provenance")}
    right = {k: v for k, v in new.data.items() if k not in ("digest", "provenance")}
    old_index, new_index = _LazyIndex(old.data), _LazyIndex(new.data)
    covered: set[str] = set()
    for change in compare(left, right):
        old_prov, old_key = _provenance_of(old.data, change.path, old_index) if change.op != "added" else (None, None)
        new_prov, new_key = _provenance_of(new.data, change.path, new_index) if change.op != "removed" else (None, None)
        covered.update(k for k in (old_key, new_key) if k)
        result.changes.append(Change(change.op, change.path, change.old, change.new, old_prov, new_prov))
    # Provenance that moved while the value stayed: still a change of the artifact, reported by settings path.
    old_prov_map = old.data.get("provenance") or {}
    new_prov_map = new.data.get("provenance") or {}
    if isinstance(old_prov_map, dict) and isinstance(new_prov_map, dict) and old_prov_map != new_prov_map:
        for key in sorted(old_prov_map.keys() | new_prov_map.keys()):
            before, after = old_prov_map.get(key), new_prov_map.get(key)
            if before == after or key in covered:
                continue
            path = "$.settings" + "".join(key_token(part) for part in key.split("."))
            result.changes.append(Change("changed", path, old_provenance=before, new_provenance=after, moved=True))
    result.changes.sort(key=lambda c: c.path)
    return result


# ---------------------------------------------------------------- rendering

def _short(value: Any, limit: int = 96) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _summary(value: Any) -> str:
    """A one-line description of an added or removed object."""
    if isinstance(value, dict):
        bits = []
        for name in ("factory", "provider", "used_by", "type", "sha256", "version", "origin"):
            if name in value and value[name] not in (None, ""):
                shown = value[name]
                bits.append(f"{name} {', '.join(map(str, shown)) if isinstance(shown, list) else shown}")
        if bits:
            return ", ".join(bits[:3])
    return _short(value)


def report_text(result: DiffResult) -> str:
    old, new = result.old, result.new
    lines = [f"--- {old.name} ({old.data.get('digest', 'no digest')})",
             f"+++ {new.name} ({new.data.get('digest', 'no digest')})"]
    if result.same:
        lines.append(f"no differences between the two {old.kind} artifacts")
        return "\n".join(lines)
    for change in result.changes:
        if change.op == "added":
            lines.append(f"+ {change.path}: {_summary(change.new)}")
            if change.new_provenance:
                lines.append(f"    at {change.new_provenance}")
        elif change.op == "removed":
            lines.append(f"- {change.path}: {_summary(change.old)}")
            if change.old_provenance:
                lines.append(f"    was at {change.old_provenance}")
        elif change.moved:
            lines.append(f"~ {change.path}: value unchanged, set at {change.old_provenance} -> {change.new_provenance}")
        else:
            lines.append(f"~ {change.path}: {_short(change.old)} -> {_short(change.new)}")
            if change.old_provenance or change.new_provenance:
                if change.old_provenance == change.new_provenance:
                    lines.append(f"    at {change.new_provenance}")
                else:
                    lines.append(f"    old: {change.old_provenance or '?'}")
                    lines.append(f"    new: {change.new_provenance or '?'}")
    counts = {op: sum(1 for c in result.changes if c.op == op) for op in ("added", "removed", "changed")}
    lines.append(f"{len(result.changes)} change(s): {counts['added']} added, {counts['removed']} removed, "
                 f"{counts['changed']} changed")
    return "\n".join(lines)


def change_dict(change: Change) -> dict[str, Any]:
    """One change as plain data (`--json`, and the release notes' diff section)."""
    return {"op": change.op, "path": change.path, "old": change.old, "new": change.new,
            "old_provenance": change.old_provenance, "new_provenance": change.new_provenance, "moved": change.moved}


def as_dict(result: DiffResult) -> dict[str, Any]:
    def side(s: Side) -> dict[str, Any]:
        return {"name": s.name, "format": s.data.get("format"), "digest": s.data.get("digest")}

    return {
        "kind": result.old.kind,
        "same": result.same,
        "old": side(result.old),
        "new": side(result.new),
        "changes": [change_dict(c) for c in result.changes],
    }


def report_json(result: DiffResult) -> str:
    return json.dumps(as_dict(result), indent=2, sort_keys=True, ensure_ascii=False)
