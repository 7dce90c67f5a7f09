"""Environment overrides: `ONEIRIC_<SECTION>__<FIELD>` converted by the artifact's env_keys types."""

from __future__ import annotations

import copy
import json
from typing import Any, Iterable, Mapping

from runtime.model import EnvKey

PREFIX = "ONEIRIC_"
#: ONEIRIC_ variables that are not settings overrides.
RESERVED = frozenset({"ONEIRIC_CONFIG", "ONEIRIC_PROFILE", "ONEIRIC_DEBUG_MODULES"})
RESERVED_PREFIXES = ("ONEIRIC_SECRET_",)

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


class OverrideError(Exception):
    """An environment value cannot be converted to its key's type."""


class OverrideResult:
    __slots__ = ("settings", "applied", "sources", "warnings")

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        #: dotted path -> converted value, for every override applied
        self.applied: dict[str, Any] = {}
        #: dotted path -> the variable name that set it
        self.sources: dict[str, str] = {}
        self.warnings: list[str] = []


def alt_name(path: str) -> str:
    """The all-double-underscore spelling: runtime.supervisor.enabled -> ONEIRIC_RUNTIME__SUPERVISOR__ENABLED."""
    parts = [p.upper().replace("-", "_") for p in path.split(".")]
    return PREFIX + "__".join(parts)


def convert(value: str, type_: str, name: str) -> Any:
    """Convert one environment string by JSON Schema type; strings stay strings ("00123" included)."""
    kind = type_
    if kind == "string":
        return value
    text = value.strip()
    if kind == "boolean":
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise OverrideError(f"{name}={value!r}: expected a boolean (true/false/1/0/yes/no/on/off)")
    if kind == "integer":
        try:
            return int(text, 10)
        except ValueError:
            raise OverrideError(f"{name}={value!r}: expected an integer") from None
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            raise OverrideError(f"{name}={value!r}: expected a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise OverrideError(f"{name}={value!r}: expected a finite number")
        return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number
    if kind == "array":
        if text.startswith("["):
            try:
                items = json.loads(text)
            except ValueError:
                raise OverrideError(f"{name}={value!r}: expected a JSON array or comma-separated list") from None
            if not isinstance(items, list):
                raise OverrideError(f"{name}={value!r}: expected a JSON array")
            return items
        return [item.strip() for item in text.split(",") if item.strip()]
    if kind == "null":
        return None
    return value


def parse_bool(value: str | None) -> bool | None:
    """The parsed value of a boolean variable, None when unset or not a boolean word."""
    if value is None:
        return None
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    return None


_PROVIDER_SETTINGS = "adapters.provider_settings."


def split_path(path: str) -> list[str]:
    """Dotted path -> parts; a provider name inside `adapters.provider_settings.` may itself hold dots."""
    if path.startswith(_PROVIDER_SETTINGS) and path.count(".") > 3:
        provider, _, leaf = path[len(_PROVIDER_SETTINGS):].rpartition(".")
        return ["adapters", "provider_settings", provider, leaf]
    return path.split(".")


def _set_path(tree: dict[str, Any], path: str, value: Any) -> None:
    parts = split_path(path)
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _closest(name: str, candidates: Iterable[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def apply_env(settings: Mapping[str, Any], env_keys: Iterable[EnvKey], environ: Mapping[str, str],
              *, extra_reserved: Iterable[str] = ()) -> OverrideResult:
    """Apply the overrides found in `environ` to a deep copy of `settings`.

    Unknown ONEIRIC_ variables are reported in `warnings` with the closest known name;
    a value that does not convert raises OverrideError.
    """
    keys = list(env_keys)
    by_name: dict[str, EnvKey] = {}
    for key in keys:
        by_name[key.name.upper()] = key
        by_name.setdefault(alt_name(key.path), key)
    reserved_prefixes = RESERVED_PREFIXES + tuple(p.upper() for p in extra_reserved)
    result = OverrideResult(settings=copy.deepcopy(dict(settings)))
    errors: list[str] = []
    for raw_name in sorted(environ):
        upper = raw_name.upper()
        if not upper.startswith(PREFIX) or upper in RESERVED or upper.startswith(reserved_prefixes):
            continue
        key = by_name.get(upper)
        if key is None:
            hint = _closest(upper, [k.name for k in keys])
            result.warnings.append(f"{raw_name} is not a setting of this profile and is ignored"
                                   + (f"; did you mean {hint}?" if hint else ""))
            continue
        if key.secret_bound:
            result.warnings.append(f"{raw_name} is ignored: {key.path} holds a secret:// reference "
                                   "(set the secret in the secrets provider instead)")
            continue
        try:
            value = convert(environ[raw_name], key.type, raw_name)
        except OverrideError as exc:
            errors.append(str(exc))
            continue
        if key.path in result.sources and result.sources[key.path] != raw_name:
            result.warnings.append(f"{raw_name} and {result.sources[key.path]} both set {key.path}; using {raw_name}")
        _set_path(result.settings, key.path, value)
        result.applied[key.path] = value
        result.sources[key.path] = raw_name
    if errors:
        raise OverrideError("; ".join(errors))
    return result


def get_path(tree: Mapping[str, Any], path: str, default: Any = None) -> Any:
    node: Any = tree
    for part in split_path(path):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node
