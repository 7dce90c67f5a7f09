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
    """Leaves of the effective settings and where each came from."""

    def __init__(self) -> None:
        self.values: dict[Path, Any] = {}
        self.provenance: dict[Path, str] = {}

    def set(self, path: Path, value: Any, origin: str) -> None:
        # A leaf replaces any leaves below it, and a leaf below replaces a leaf above.
        for existing in [p for p in self.values if p[:len(path)] == path or path[:len(p)] == p]:
            del self.values[existing]
            del self.provenance[existing]
        self.values[path] = value
        self.provenance[path] = origin

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
