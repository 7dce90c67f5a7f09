"""Resolve stage, part 5: the profile artifact's `env_keys`, each overridable key with the constraints
its schema puts on it (runtime.contract checks every override against them at start).

Names, what env may not change and the secret syntax come from runtime.contract; only the reading
of the schemas is here, because the runtime never reads a schema.
"""

from __future__ import annotations

from typing import Any

from compiler.layering import Layers
from compiler.schema import load_schema
from runtime import contract
from runtime.model import EnvKey

_SCALARS = ("string", "integer", "number", "boolean")
_COPIED = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern", "minLength", "maxLength",
           "minItems", "maxItems")


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """Follow local `$ref`s (`#/$defs/name`) to the node they name."""
    seen = 0
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/") and seen < 8:
        target: Any = root
        for part in node["$ref"][2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        node, seen = {**{k: v for k, v in node.items() if k != "$ref"}, **target}, seen + 1
    return node if isinstance(node, dict) else {}


def _is_secret_ref(node: dict[str, Any]) -> bool:
    return str(node.get("pattern", "")).lstrip("^").startswith("secret:")


def describe(node: dict[str, Any], root: dict[str, Any]) -> tuple[str | None, bool, dict[str, Any]]:
    """(type, secret-bound, constraints) of one settings schema node; type None when the environment
    cannot set it (objects, arrays of objects, no type at all)."""
    node = _resolve(node, root)
    constraints: dict[str, Any] = {}
    secret_bound = False
    branches = [_resolve(b, root) for b in node.get("anyOf") or node.get("oneOf") or []]
    if branches:
        if any(b.get("type") == "null" for b in branches):
            constraints["nullable"] = True
        rest = [b for b in branches if b.get("type") != "null"]
        secret_bound = any(_is_secret_ref(b) for b in rest)
        if len(rest) != 1:
            return ("string" if secret_bound else None), secret_bound, constraints
        node = {**{k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}, **rest[0]}
    kind = node.get("type")
    if isinstance(kind, list):
        if "null" in kind:
            constraints["nullable"] = True
        kind = next((k for k in kind if k != "null"), None)
    if "enum" in node:
        values = [v for v in node["enum"] if v is not None]
        if len(values) != len(node["enum"]):
            constraints["nullable"] = True
        constraints["enum"] = values
        if kind is None and values and all(isinstance(v, str) for v in values):
            kind = "string"
    for word in _COPIED:
        if word in node:
            constraints[word] = node[word]
    if kind == "array":
        items = _resolve(node.get("items") or {}, root)
        item_kind, _, item_rules = describe(items, root) if items else ("string", False, {})
        if item_kind is None and items.get("type") == "object":
            item_kind, item_rules = "object", _object_rules(items, root)
        if item_kind is None or item_rules is None:
            return None, False, {}
        constraints["items"] = {"type": item_kind, **item_rules}
    elif kind not in _SCALARS:
        return None, False, {}
    return kind, secret_bound or _is_secret_ref(node), constraints


def _object_rules(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any] | None:
    """An array item that is an object of scalar (or scalar-array) fields, as `required` + `properties`
    (unknown fields refused); None when a field is itself deeper than that."""
    properties = {}
    for name, sub in (node.get("properties") or {}).items():
        kind, _, rules = describe(sub, root)
        if kind is None:
            return None
        properties[name] = {"type": kind, **rules}
    return {"required": list(node.get("required") or []), "properties": properties}


def _schema_node(schema: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    node: Any = schema
    for part in path:
        properties = _resolve(node if isinstance(node, dict) else {}, schema).get("properties")
        node = properties.get(part) if isinstance(properties, dict) else None
        if not isinstance(node, dict):  # absent, or a boolean sub-schema: no type to convert by
            return None
    return node


def _leaf_type(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list) and all(isinstance(v, (str, int, float, bool)) for v in value):
        return "array"
    return None


def env_keys(layers: Layers, provider_schemas: dict[tuple[str, ...], dict[str, Any]]) -> list[EnvKey]:
    """Every key the environment may override, with its type and constraints, sorted by name."""
    settings_schema = load_schema("settings.schema.json")
    out = []
    for path, value in sorted(layers.values.items()):
        if not contract.overridable(path):
            continue
        prefix = next((p for p in provider_schemas if path[:len(p)] == p and len(path) > len(p)), None)
        schema, rel = (provider_schemas[prefix], path[len(prefix):]) if prefix else (settings_schema, path)
        node = _schema_node(schema, rel)
        if node is None and prefix:  # `secrets.provider` is the settings schema's, not the provider's
            schema, node = settings_schema, _schema_node(settings_schema, path)
        if node is not None:
            kind, secret_bound, constraints = describe(node, schema)
        else:  # a provider without a schema for this key: its compiled type, nothing more known
            kind, secret_bound, constraints = _leaf_type(value), False, {}
        if kind is None:
            continue
        secret_bound = secret_bound or contract.parse_secret_ref(value) is not None
        out.append(EnvKey(name=contract.env_name(path), path=".".join(path), type=kind, secret_bound=secret_bound,
                          constraints=constraints))
    return sorted(out, key=lambda k: k.name)
