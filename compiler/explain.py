"""`oneiric explain KEY`: every layer that sets a settings key, lowest first, the winner last."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from compiler.builtins import TOGGLE_SETTINGS
from compiler.diagnostics import Document, pointer_from_parts
from compiler.layering import schema_defaults
from compiler.schema import load_schema
from runtime import contract
from runtime.model import EnvKey, ProfileArtifact


@dataclass(frozen=True)
class Layer:
    name: str
    value: Any
    origin: str


def explain(key: str, artifact: ProfileArtifact, settings: Document | None,
            environ: dict[str, str] | None = None) -> list[Layer]:
    """The chain for KEY (dotted settings path or its ONEIRIC_ env name)."""
    env = os.environ if environ is None else environ
    env_key = next((k for k in artifact.env_keys if k.path == key or key.upper() in contract.env_names(k.path)), None)
    path = tuple((env_key.path if env_key else key).split("."))
    layers: list[Layer] = []
    defaults = schema_defaults(load_schema("settings.schema.json"))
    if path in defaults:
        layers.append(Layer("schema default", defaults[path], "schemas/settings.schema.json"))
    provider_origin = artifact.provenance.get(".".join(path), "")
    if provider_origin.startswith(("schema default", "manifest default")) and path not in defaults:
        layers.append(Layer(provider_origin.split(" (")[0], _lookup(artifact.settings, path), provider_origin))
    dotted = ".".join(path)
    if dotted in TOGGLE_SETTINGS:
        toggle = TOGGLE_SETTINGS[dotted]
        layers.append(Layer(f"profile:{artifact.profile.name}", getattr(artifact.profile.toggles, toggle),
                            f"toggle {toggle} of profile {artifact.profile.name}"))
    if settings is not None:
        node: Any = settings.data
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            layers.append(Layer("settings file", node, str(settings.span(pointer_from_parts(path), key=True))))
    value = _lookup(artifact.settings, path)
    if env_key is not None:
        for name, raw in contract.find_env(env, env_key.path):
            layers.append(_env_layer(env_key, name, raw))
    if isinstance(value, str) and value.startswith("secret://"):
        provider = artifact.settings.get("secrets", {}).get("provider", "env")
        layers.append(Layer("secret", "<resolved at runtime>", f"{value} via secrets provider {provider}"))
    return layers


def _env_layer(key: EnvKey, name: str, raw: str) -> Layer:
    """An override as `orchestrate` would take it: applied, or refused with the contract's reason. A
    secret-bound key's value is shown only when it is a secret:// reference (a literal may be the secret)."""
    shown = raw if not key.secret_bound or contract.parse_secret_ref(raw.strip()) else "<redacted>"
    try:
        value = contract.convert(raw, key.type, name, nullable=bool(key.constraints.get("nullable")),
                                 shown="<redacted>" if key.secret_bound else None)
        contract.check_key_value(key, value, name, raw)
    except contract.ContractError as exc:
        return Layer(f"environment (refused at start: {exc})", shown, name)
    return Layer("environment", shown, name)


def _lookup(tree: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = tree
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
