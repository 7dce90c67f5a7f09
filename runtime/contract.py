"""The settings contract, on the reader's side: the rules both the compiler and the runtime follow.

One home for: the `ONEIRIC_*` names of a settings key (both spellings) and how a raw environment
string becomes a value (one true/false word list); the constraints an override must meet (carried by
the profile artifact's `env_keys`, derived from the schemas at compile time) and how they are checked;
the security cross-checks an override re-runs (the compiler runs the same functions); the built-in
profiles and providers, the provider aliases and the `secret://` reference syntax. The compiler
imports it; nothing else derives an env name. Standard library only: it runs on the cold-start path.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, Mapping

from runtime import ecma_regex
from runtime.model import EnvKey, Toggles

# ---------------------------------------------------------------- names

PREFIX = "ONEIRIC_"
#: ONEIRIC_ variables that are not settings overrides.
RESERVED = frozenset({"ONEIRIC_CONFIG", "ONEIRIC_PROFILE", "ONEIRIC_DEBUG_MODULES"})
RESERVED_PREFIXES = ("ONEIRIC_SECRET_",)
_PROVIDER_SETTINGS = "adapters.provider_settings."


def split_path(path: str | tuple[str, ...]) -> list[str]:
    """Dotted path -> parts; a provider name inside `adapters.provider_settings.` may itself hold dots."""
    if not isinstance(path, str):
        return list(path)
    if path.startswith(_PROVIDER_SETTINGS) and path.count(".") > 3:
        provider, _, leaf = path[len(_PROVIDER_SETTINGS):].rpartition(".")
        return ["adapters", "provider_settings", provider, leaf]
    return path.split(".")


def get_path(tree: Mapping[str, Any], path: str | tuple[str, ...], default: Any = None) -> Any:
    """The value at a dotted path of a settings tree, `default` when absent."""
    node: Any = tree
    for part in split_path(path):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def _word(part: str) -> str:
    return part.upper().replace(".", "_").replace("-", "_")


def env_name(path: str | tuple[str, ...]) -> str:
    """The name the artifact's env_keys use: runtime.supervisor.enabled -> ONEIRIC_RUNTIME_SUPERVISOR__ENABLED
    (the sections joined by `_`, `__` before the field)."""
    parts = [_word(p) for p in split_path(path)]
    return PREFIX + "_".join(parts[:-1]) + "__" + parts[-1]


def alt_env_name(path: str | tuple[str, ...]) -> str:
    """The all-double-underscore spelling, also accepted: ONEIRIC_RUNTIME__SUPERVISOR__ENABLED."""
    return PREFIX + "__".join(_word(p) for p in split_path(path))


def env_names(path: str | tuple[str, ...]) -> tuple[str, ...]:
    """Every spelling of `path`'s override, the artifact's first (matched case-insensitively)."""
    return tuple(dict.fromkeys((env_name(path), alt_env_name(path))))


def is_override_name(name: str, extra_reserved: Iterable[str] = ()) -> bool:
    """Whether an environment variable is meant as a settings override (ONEIRIC_*, not reserved)."""
    upper = name.upper()
    reserved = RESERVED_PREFIXES + tuple(p.upper() for p in extra_reserved)
    return upper.startswith(PREFIX) and upper not in RESERVED and not upper.startswith(reserved)


def find_env(environ: Mapping[str, str], path: str) -> list[tuple[str, str]]:
    """(variable, raw value) of every variable in `environ` that overrides `path`, in sorted order."""
    names = {n.upper() for n in env_names(path)}
    return [(k, environ[k]) for k in sorted(environ) if k.upper() in names]


# ---------------------------------------------------------------- values

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})


class ContractError(Exception):
    """A settings value breaks the contract; the message names the variable or key, the rule and the value."""


def parse_bool(text: str | None) -> bool | None:
    """True/False for a boolean word (any case, surrounding blanks ignored), None otherwise."""
    if text is None:
        return None
    low = text.strip().lower()
    return True if low in TRUE_WORDS else False if low in FALSE_WORDS else None


def convert(text: str, type_: str, name: str, *, nullable: bool = False, shown: str | None = None) -> Any:
    """One environment string -> a value of the key's JSON Schema type; strings stay strings ("00123").

    An empty value of a nullable key is null. `shown` is what messages print instead of the value.
    """
    shown = repr(text) if shown is None else shown
    if nullable and text.strip() == "":
        return None
    if type_ == "string":
        return text
    stripped = text.strip()
    if type_ == "boolean":
        value = parse_bool(stripped)
        if value is None:
            raise ContractError(f"{name}={shown}: expected a boolean ({'/'.join(sorted(TRUE_WORDS))} or "
                                f"{'/'.join(sorted(FALSE_WORDS))})")
        return value
    if type_ == "integer":
        if not re.fullmatch(r"[+-]?[0-9]{1,18}", stripped):
            raise ContractError(f"{name}={shown}: expected an integer")
        return int(stripped, 10)
    if type_ == "number":
        try:
            number = float(stripped)
        except ValueError:
            raise ContractError(f"{name}={shown}: expected a number") from None
        if not math.isfinite(number):
            raise ContractError(f"{name}={shown}: expected a finite number")
        plain = re.fullmatch(r"[+-]?[0-9]{1,18}", stripped) is not None
        return int(stripped) if plain else number
    if type_ == "array":
        if stripped.startswith("["):
            import json

            try:
                items = json.loads(stripped, parse_constant=_no_constant)
            except (ValueError, RecursionError):
                raise ContractError(f"{name}={shown}: expected a JSON array or a comma-separated list") from None
            if not isinstance(items, list):
                raise ContractError(f"{name}={shown}: expected a JSON array")
            return items
        return [item.strip() for item in stripped.split(",") if item.strip()]
    raise ContractError(f"{name}: type {type_!r} cannot be set from the environment")


def _no_constant(word: str) -> Any:
    raise ValueError(f"{word} is not JSON")


# ---------------------------------------------------------------- constraints

#: JSON Schema keywords an env key's `constraints` may hold (docs/artifacts.md).
CONSTRAINT_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum", "pattern",
                       "minLength", "maxLength", "minItems", "maxItems", "items", "nullable",
                       "required", "properties")  # the last two only inside `items` of type object


def pattern_matches(pattern: str, text: str) -> bool:
    """JSON Schema `pattern` semantics (a search, read as ECMA-262: runtime.ecma_regex)."""
    try:
        return ecma_regex.search(pattern, text)
    except re.error:
        return False


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def violation(value: Any, type_: str, rules: Mapping[str, Any]) -> str | None:
    """The first constraint `value` breaks, as text ("maximum 3600"), or None when it meets them all."""
    if value is None:
        return None if rules.get("nullable") else "not null"
    if type_ == "boolean" and not isinstance(value, bool):
        return "type boolean"
    if type_ == "integer" and not (isinstance(value, int) and not isinstance(value, bool)):
        return "type integer"
    if type_ == "number" and not (_number(value) and math.isfinite(value)):
        return "type number (finite)"
    if type_ == "string" and not isinstance(value, str):
        return "type string"
    if type_ == "array" and not isinstance(value, list):
        return "type array"
    if type_ == "object":
        if not isinstance(value, dict):
            return "type object"
        fields = rules.get("properties") or {}
        missing = [name for name in rules.get("required") or () if name not in value]
        if missing:
            return f"required {', '.join(missing)}"
        for name, item in value.items():
            if name not in fields:
                return f"no field {name!r} (fields: {', '.join(fields)})"
            found = violation(item, str(fields[name].get("type", "")), fields[name])
            if found:
                return f"{name} {found}"
        return None
    if _number(value):
        for word, bad in (("minimum", lambda v, b: v < b), ("maximum", lambda v, b: v > b),
                          ("exclusiveMinimum", lambda v, b: v <= b), ("exclusiveMaximum", lambda v, b: v >= b)):
            bound = rules.get(word)
            if bound is not None and bad(value, bound):
                return f"{word} {bound}"
    if "enum" in rules and value not in rules["enum"]:
        return "one of " + ", ".join(str(v) for v in rules["enum"])
    if isinstance(value, str):
        if rules.get("minLength") is not None and len(value) < rules["minLength"]:
            return f"minLength {rules['minLength']}"
        if rules.get("maxLength") is not None and len(value) > rules["maxLength"]:
            return f"maxLength {rules['maxLength']}"
        if rules.get("pattern") is not None and not pattern_matches(rules["pattern"], value):
            return f"pattern {rules['pattern']}"
    if isinstance(value, list):
        if rules.get("minItems") is not None and len(value) < rules["minItems"]:
            return f"minItems {rules['minItems']}"
        if rules.get("maxItems") is not None and len(value) > rules["maxItems"]:
            return f"maxItems {rules['maxItems']}"
        items = rules.get("items")
        if isinstance(items, Mapping):
            for i, item in enumerate(value):
                found = violation(item, str(items.get("type", "")), items) if items.get("type") else None
                if found:
                    return f"items[{i}] {found}"
    return None


def redacted(value: Any, key: EnvKey) -> str:
    """How a value of `key` may appear in a message: never when the key holds a secret."""
    return "<redacted>" if key.secret_bound else repr(value)


def check_key_value(key: EnvKey, value: Any, where: str, raw: str | None = None) -> None:
    """Raise ContractError naming `where` (a variable or artifact key), the constraint and the value."""
    rules = key.constraints or {}
    if key.secret_bound and value is not None and not (isinstance(value, str) and SECRET_REF.fullmatch(value)):
        raise ContractError(f"{where}: {key.path} holds a secret; only a secret://NAME[@VERSION] reference is "
                            "accepted (store the value in the secrets provider)")
    broken = violation(value, key.type, rules)
    if broken:
        shown = "<redacted>" if key.secret_bound else repr(raw if raw is not None else value)
        raise ContractError(f"{where}={shown} violates {broken} ({key.path})")


# ---------------------------------------------------------------- secrets

SECRET_PREFIX = "secret://"
#: `secret://NAME` or `secret://NAME@VERSION`; use with fullmatch.
SECRET_REF = re.compile(r"secret://(?P<name>[A-Za-z0-9_-]{1,255})(?:@(?P<version>[0-9]+|latest))?")


_CREDENTIAL_KEY = re.compile(r"(^|_)(password|passwd|pwd|secret|token|api_?key|private_?key|credentials?|client_secret)$",
                             re.I)
_DSN_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*:[^@/\s]+@")


def credential_literal(path: str | tuple[str, ...], value: Any) -> tuple[str, str] | None:
    """(message, hint) when `value` is a literal that looks like a credential (a key named like one, or a
    URL with a password) where a secret:// reference belongs; the message never repeats the value."""
    if not isinstance(value, str) or not value or value.startswith(SECRET_PREFIX):
        return None
    parts = split_path(path)
    dotted = ".".join(parts)
    name = "-".join(parts[-2:]).replace("_", "-").replace(".", "-")
    if _CREDENTIAL_KEY.search(parts[-1]):
        return (f"{dotted} holds a literal credential",
                f"store it in your secrets provider and write \"secret://{name}\"")
    if _DSN_PASSWORD.match(value):
        return (f"{dotted} holds a URL with a password",
                f"put the whole URL in your secrets provider and write \"secret://{name}\"")
    return None


def parse_secret_ref(value: Any) -> tuple[str, str | None] | None:
    """(name, pinned version or None) of a secret reference, None for anything else."""
    match = SECRET_REF.fullmatch(value) if isinstance(value, str) else None
    return (match["name"], match["version"]) if match else None


# ---------------------------------------------------------------- profiles and providers

#: The built-in runtime profiles (SPEC 3).
PROFILES: dict[str, Toggles] = {
    "default": Toggles(watchers_enabled=True, remote_enabled=True, inline_manifest_only=False, supervisor_enabled=True),
    "serverless": Toggles(watchers_enabled=False, remote_enabled=False, inline_manifest_only=True,
                          supervisor_enabled=True),
}
TOGGLE_NAMES = ("watchers_enabled", "remote_enabled", "inline_manifest_only", "supervisor_enabled")
#: Settings keys whose profile default comes from a toggle.
TOGGLE_SETTINGS: dict[str, str] = {
    "runtime.supervisor.enabled": "supervisor_enabled",
    "remote.enabled": "remote_enabled",
}
SUPERVISOR_PATH = "runtime.supervisor.enabled"

#: Provider aliases, by (domain, key).
ALIASES: dict[tuple[str, str], dict[str, str]] = {("adapter", "secrets"): {"gcp": "gcp.secret_manager"}}
#: Built-in providers: (domain, key, provider, factory, priority, settings schema under schemas/).
BUILTIN_PROVIDERS: tuple[tuple[str, str, str, str, int, str], ...] = (
    ("adapter", "secrets", "env", "runtime.adapters.secrets_env:EnvSecrets", 0, "providers/env.json"),
    ("adapter", "secrets", "file", "runtime.adapters.secrets_file:FileSecrets", -1, "providers/file.json"),
    ("adapter", "secrets", "gcp.secret_manager", "runtime.adapters.secrets_gcp:SecretManagerSecrets", -1,
     "providers/gcp.secret_manager.json"),
    ("adapter", "queue", "local", "runtime.adapters.queue_local:LocalQueue", 0, "providers/local.json"),
    ("adapter", "queue", "cloudtasks", "runtime.adapters.queue_cloudtasks:CloudTasksQueue", -1,
     "providers/cloudtasks.json"),
)
#: Module prefixes of built-in factories; always allowed, whatever the allowlist says.
BUILTIN_FACTORY_PREFIXES = ("runtime.adapters", "runtime.workflows")


def canonical_provider(domain: str, key: str, provider: str) -> str:
    """A provider alias (`gcp`) -> the provider's own name (`gcp.secret_manager`)."""
    return ALIASES.get((domain, key), {}).get(provider, provider)


def builtin_factory(domain: str, key: str, provider: str) -> str | None:
    provider = canonical_provider(domain, key, provider)
    return next((b[3] for b in BUILTIN_PROVIDERS if b[:3] == (domain, key, provider)), None)


# ---------------------------------------------------------------- what env may not change

#: Sections fixed at compile time: selections are resolved, the allowlist guards factories, and [deploy]
#: shapes the Cloud Run service (it is not a setting of the running process).
NOT_OVERRIDABLE_SECTIONS = ("profile", "profiles", "security", "deploy")
#: Keys fixed at compile time: turning delivery authentication off must be in the reviewed settings file.
NOT_OVERRIDABLE_KEYS = frozenset({"http.allow_unauthenticated_tasks"})


def overridable(path: str | tuple[str, ...]) -> bool:
    parts = split_path(path)
    dotted = ".".join(parts)
    if len(parts) < 2 or parts[0] in NOT_OVERRIDABLE_SECTIONS or dotted in NOT_OVERRIDABLE_KEYS:
        return False
    return not (len(parts) == 3 and parts[1] == "selections")


# ---------------------------------------------------------------- cross-checks (compiler and runtime)

def check_tasks_auth(http: Mapping[str, Any], base_profile: str) -> tuple[str, str, str | None] | None:
    """(code, message, hint) when `[http]` leaves deliveries unauthenticated or unverifiable, else None.
    The compiler reports it with a position; the runtime re-runs it after env overrides."""
    mode = http.get("tasks_auth")
    if mode == "none" and base_profile == "serverless" and not http.get("allow_unauthenticated_tasks"):
        return ("auth.none", "tasks_auth = \"none\" is refused under the serverless profile",
                "use hmac or oidc, or set [http] allow_unauthenticated_tasks = true")
    if mode == "hmac" and not http.get("hmac_key"):
        return "auth.hmac-key", "tasks_auth = \"hmac\" needs [http] hmac_key = \"secret://NAME\"", None
    if mode == "oidc":
        missing = [k for k in ("oidc_audience", "oidc_service_account") if not http.get(k)]
        if missing:
            return "auth.oidc", f"tasks_auth = \"oidc\" needs [http] {' and '.join(missing)}", None
    return None


def check_remote(remote: Mapping[str, Any]) -> tuple[str, str, str | None] | None:
    """(code, message, hint) when `[remote] manifest_url` is not allowed: https needs a sha256 pin; file://
    needs allow_file_uris and an absolute local path, without control characters or `..`, inside
    allowed_file_uri_roots (compared lexically here; the refresher also resolves symlinks before reading)."""
    import posixpath
    from urllib.parse import unquote, urlsplit

    url = remote.get("manifest_url")
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme == "file":
        if not remote.get("allow_file_uris"):
            return "remote.file-uri", "file:// manifest_url needs [remote] allow_file_uris = true", None
        path = unquote(parts.path)
        if any(ord(c) < 0x20 for c in path):
            return "remote.file-uri", f"file:// URL holds a control character (%00?): {url!r}", None
        if parts.netloc not in ("", "localhost") or not path.startswith("/"):
            return "remote.file-uri", f"file:// URL must be absolute and local: {url!r}", None
        normal = posixpath.normpath(path)
        roots = [posixpath.normpath(str(r)) for r in remote.get("allowed_file_uri_roots") or []]
        if ".." in path.split("/") or not any(normal == r or normal.startswith(r.rstrip("/") + "/") for r in roots):
            return ("remote.file-uri", f"manifest_url {url!r} is outside allowed_file_uri_roots "
                    f"({', '.join(roots) or 'none allowed'})", "add its directory to [remote] allowed_file_uri_roots")
        return None
    if parts.scheme == "https":
        if not remote.get("manifest_sha256"):
            return "remote.pin", "an https:// manifest_url needs [remote] manifest_sha256 (a sha256 pin)", None
        return None
    return ("remote.scheme", f"manifest_url scheme {parts.scheme or '(none)'!r} is not allowed",
            "use https:// with a sha256 pin, or file:// inside allowed_file_uri_roots")
