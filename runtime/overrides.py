"""Environment overrides: `ONEIRIC_<SECTION>__<FIELD>` applied to the compiled settings under the settings
contract (runtime.contract): converted by the key's type, checked against its constraints, secret-bound
keys limited to `secret://` references, the security cross-checks re-run. Every violation is collected
and refused at once (exit 1 at start)."""

from __future__ import annotations

import copy
from typing import Any, Iterable, Mapping

from runtime import contract
from runtime.contract import ContractError, get_path, split_path  # noqa: F401 (re-exported)
from runtime.model import EnvKey, ProfileArtifact

#: The error an override raises (the contract's own).
OverrideError = ContractError


class OverrideResult:
    __slots__ = ("settings", "applied", "sources", "warnings")

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        #: dotted path -> converted value, for every override applied
        self.applied: dict[str, Any] = {}
        #: dotted path -> the variable name that set it
        self.sources: dict[str, str] = {}
        self.warnings: list[str] = []


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


def _leaves(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterable[tuple[str, ...]]:
    for name, value in tree.items():
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, prefix + (name,))
        else:
            yield prefix + (name,)


def _one_value(key: EnvKey, found: list[tuple[str, str]], errors: list[str]) -> tuple[str, Any] | None:
    """The variable and converted value overriding `key`; both spellings may be set only to one value."""
    converted: list[tuple[str, str, Any]] = []
    for var, raw in found:
        try:
            value = contract.convert(raw, key.type, var, nullable=bool(key.constraints.get("nullable")),
                                     shown="<redacted>" if key.secret_bound else None)
        except ContractError as exc:
            errors.append(str(exc))
            return None
        converted.append((var, raw, value))
    if len({repr(v) for _, _, v in converted}) > 1:
        names = " and ".join(var for var, _, _ in converted)
        errors.append(f"{names} both set {key.path} to different values: unset one of them")
        return None
    var, raw, value = converted[-1]
    try:
        contract.check_key_value(key, value, var, raw)
    except ContractError as exc:
        errors.append(str(exc))
        return None
    literal = contract.credential_literal(key.path, value)
    if literal:  # the compiler's own check: a credential belongs in the secrets provider
        errors.append(f"{var}=<redacted>: {literal[0]} ({literal[1]})")
        return None
    return var, value


def apply_env(settings: Mapping[str, Any], env_keys: Iterable[EnvKey], environ: Mapping[str, str],
              *, extra_reserved: Iterable[str] = (), base_profile: str | None = None) -> OverrideResult:
    """Apply the overrides found in `environ` to a deep copy of `settings`.

    Unknown ONEIRIC_ variables are reported in `warnings` with the closest known name; a value that does
    not convert or breaks its key's constraints, a variable naming a key env may not change, and (given
    `base_profile`) settings that fail the security cross-checks raise ContractError listing every problem.
    """
    keys = [k for k in env_keys if contract.overridable(k.path)]
    by_name = {n.upper(): k for k in keys for n in contract.env_names(k.path)}
    by_name.update({k.name.upper(): k for k in keys})
    fixed = {n.upper(): ".".join(p) for p in _leaves(settings) if not contract.overridable(p)
             for n in contract.env_names(p)}
    fixed.update({n.upper(): k.path for k in env_keys if not contract.overridable(k.path)
                  for n in contract.env_names(k.path)})
    result = OverrideResult(settings=copy.deepcopy(dict(settings)))
    errors: list[str] = []
    found: dict[str, list[tuple[str, str]]] = {}
    for raw_name in sorted(environ):
        if not contract.is_override_name(raw_name, extra_reserved):
            continue
        upper = raw_name.upper()
        key = by_name.get(upper)
        if key is not None:
            found.setdefault(key.path, []).append((raw_name, environ[raw_name]))
        elif upper in fixed:
            errors.append(f"{raw_name}: {fixed[upper]} cannot be set from the environment "
                          "(it is fixed at compile time; change the settings file and run oneiric compile)")
        else:
            hint = _closest(upper, [k.name for k in keys])
            result.warnings.append(f"{raw_name} is not a setting of this profile and is ignored"
                                   + (f"; did you mean {hint}?" if hint else ""))
    by_path = {k.path: k for k in keys}
    for path, variables in found.items():
        chosen = _one_value(by_path[path], variables, errors)
        if chosen is None:
            continue
        var, value = chosen
        _set_path(result.settings, path, value)
        result.applied[path] = value
        result.sources[path] = var
    if base_profile is not None and not errors and any(p.startswith("http.") for p in result.applied):
        problem = contract.check_tasks_auth(result.settings.get("http") or {}, base_profile)
        if problem:
            names = ", ".join(v for p, v in sorted(result.sources.items()) if p.startswith("http."))
            errors.append(f"{names}: {problem[1]}" + (f" ({problem[2]} in the settings file)" if problem[2] else ""))
    if not errors and any(p.startswith("remote.") for p in result.applied):
        problem = contract.check_remote(result.settings.get("remote") or {})
        if problem:
            names = ", ".join(v for p, v in sorted(result.sources.items()) if p.startswith("remote."))
            errors.append(f"{names}: {problem[1]}" + (f" ({problem[2]})" if problem[2] else ""))
    if errors:
        raise ContractError("; ".join(errors))
    return result


def check_compiled(settings: Mapping[str, Any], env_keys: Iterable[EnvKey], where: str) -> None:
    """Refuse compiled values outside their own constraints (an artifact edited by hand, or written by a
    compiler with looser schemas): the runtime uses no number it did not check."""
    errors = []
    for key in env_keys:
        if not key.constraints:
            continue
        value = get_path(settings, key.path)
        try:
            contract.check_key_value(key, value, f"{where}: {key.path}")
        except ContractError as exc:
            errors.append(f"{exc}: run oneiric compile")
    if errors:
        raise ContractError("; ".join(errors))


def apply_overrides(profile: ProfileArtifact, environ: Mapping[str, str], *, where: str = "profile artifact",
                    extra_reserved: Iterable[str] = ()) -> OverrideResult:
    """The start-up path: the compiled values checked, then the environment applied under the contract."""
    check_compiled(profile.settings, profile.env_keys, where)
    return apply_env(profile.settings, profile.env_keys, environ, extra_reserved=extra_reserved,
                     base_profile=profile.profile.base)
