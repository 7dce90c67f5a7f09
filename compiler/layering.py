"""Resolve stage, part 2: settings leaves layered schema default < profile default < settings file.

Settings are handled as flat leaves (path tuple -> value) with a provenance
string per leaf, then folded back into a nested mapping for the artifact.
"""

from __future__ import annotations

from typing import Any

from compiler.builtins import TOGGLE_SETTINGS
from compiler.diagnostics import Document, pointer_from_parts
from runtime.model import Profile

Path = tuple[str, ...]

SCHEMA_DEFAULT = "schema default"
#: Top-level settings sections that are not settings of the running service.
META_SECTIONS = ("profiles",)


class Layers:
    """Leaves of the effective settings and where each came from.

    `values` and `provenance` are keyed by the leaf's path; `_below` indexes, for every proper prefix of
    a leaf, the leaves under it, so `set` costs the depth of the path, not the number of leaves (8,000
    leaves took 11 s when `set` scanned them all).
    """

    def __init__(self) -> None:
        self.values: dict[Path, Any] = {}
        self.provenance: dict[Path, str] = {}
        self._below: dict[Path, set[Path]] = {}

    def set(self, path: Path, value: Any, origin: str) -> None:
        # A leaf replaces any leaves below it, and a leaf below replaces a leaf above.
        for existing in [path[:i] for i in range(1, len(path)) if path[:i] in self.values]:
            self._remove(existing)
        for existing in list(self._below.get(path, ())):
            self._remove(existing)
        if path in self.values:  # replaced in place: moved to the end, as a new leaf would be
            self._remove(path)
        self.values[path] = value
        self.provenance[path] = origin
        for i in range(1, len(path)):
            self._below.setdefault(path[:i], set()).add(path)

    def _remove(self, path: Path) -> None:
        del self.values[path]
        del self.provenance[path]
        for i in range(1, len(path)):
            below = self._below[path[:i]]
            below.discard(path)
            if not below:
                del self._below[path[:i]]

    def setdefault(self, path: Path, value: Any, origin: str) -> None:
        if path not in self.values:
            self.set(path, value, origin)

    def get(self, path: Path, default: Any = None) -> Any:
        return self.values.get(path, default)

    def origin(self, path: Path) -> str | None:
        return self.provenance.get(path)

    def tree(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for path in sorted(self.values):
            node = out
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node[path[-1]] = self.values[path]
        return out

    def dotted_provenance(self) -> dict[str, str]:
        return {".".join(p): o for p, o in sorted(self.provenance.items())}


def schema_defaults(schema: dict[str, Any], prefix: Path = ()) -> dict[Path, Any]:
    """Leaves that carry a `default`, found through nested `properties` objects."""
    out: dict[Path, Any] = {}
    for key, sub in schema.get("properties", {}).items():
        path = prefix + (key,)
        if not isinstance(sub, dict):  # a boolean sub-schema has no default
            continue
        if "properties" in sub and sub.get("type") == "object":
            out.update(schema_defaults(sub, path))
        elif "default" in sub:
            out[path] = sub["default"]
    return out


def file_leaves(doc: Document, data: Any, prefix: Path = ()) -> list[tuple[Path, Any, str]]:
    """(path, value, "file:line:col") for every leaf of a settings document; empty tables add nothing."""
    out: list[tuple[Path, Any, str]] = []
    if isinstance(data, dict) and (data or not prefix):
        for key, value in data.items():
            if not prefix and key in META_SECTIONS:
                continue
            out.extend(file_leaves(doc, value, prefix + (key,)))
    elif not isinstance(data, dict):
        out.append((prefix, data, str(doc.span(pointer_from_parts(prefix), key=True))))
    return out


def build_layers(settings_schema: dict[str, Any], profile: Profile, doc: Document | None) -> Layers:
    layers = Layers()
    for path, value in schema_defaults(settings_schema).items():
        layers.set(path, value, SCHEMA_DEFAULT)
    for dotted, toggle in TOGGLE_SETTINGS.items():
        layers.set(tuple(dotted.split(".")), getattr(profile.toggles, toggle), f"profile:{profile.name}")
    if doc is not None:
        for path, value, origin in file_leaves(doc, doc.data):
            layers.set(path, value, origin)
    layers.setdefault(("profile", "name"), profile.name, f"profile:{profile.name}")
    return layers
