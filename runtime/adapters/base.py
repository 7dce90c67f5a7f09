"""The adapter contract every provider (built-in or third-party) follows."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Iterable, Mapping

from runtime.model import Record


class AdapterError(Exception):
    """An adapter could not be built, activated or used; the message never holds a secret value."""


class SecretNotFoundError(AdapterError):
    pass


class SecretAccessError(AdapterError):
    pass


class SecretValue:
    """A secret's value; its repr and str are redacted so it cannot leak into logs or errors."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def problem(self) -> str | None:
        """Why the value cannot be used as a secret ("is empty", "is not valid UTF-8"), else None. Never
        quotes the value: not even the offending character or its position."""
        if not isinstance(self._value, str) or self._value == "":
            return "is empty"
        try:
            self._value.encode("utf-8")
        except UnicodeEncodeError:  # os.environ carries undecodable bytes as lone surrogates
            return "is not valid UTF-8"
        return None

    def encoded(self) -> bytes:
        """The value as UTF-8 bytes; SecretAccessError (naming no part of the value) when it is unusable."""
        problem = self.problem()
        if problem:
            raise SecretAccessError(f"the secret's value {problem}")
        return self._value.encode("utf-8")

    def __repr__(self) -> str:
        return "SecretValue('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretValue) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class AdapterContext(Record):
    """What an adapter may know about where it runs (immutable, like the model classes)."""

    __slots__ = ("project_dir", "cache_dir", "profile", "log", "extra")
    project_dir: Path
    cache_dir: Path
    profile: str
    log: Any  # a callable log(severity, message, **fields) or None
    extra: Mapping[str, Any]

    def __init__(self, project_dir: Path, cache_dir: Path, profile: str, log: Any = None,
                 extra: Mapping[str, Any] | None = None) -> None:
        self._fill(project_dir, cache_dir, profile, log, {} if extra is None else extra)


class Adapter:
    """Base for adapters: build cheaply, do I/O in `activate()`, report in `health()`."""

    #: provider name, e.g. "env" or "cloudtasks"
    name = ""

    def __init__(self, settings: Mapping[str, Any], *, secrets: "SecretsAdapter | None" = None,
                 context: AdapterContext | None = None) -> None:
        self.settings = dict(settings)
        self.secrets = secrets
        self.context = context

    def activate(self) -> None:
        """Connect, import SDKs, prefetch. Called once at cold start."""

    def health(self) -> dict[str, Any]:
        return {"status": "ready"}

    def close(self) -> None:
        """Release connections; must be safe to call twice."""


class SecretsAdapter(Adapter):
    """A provider of secret values by name and version."""

    def get(self, name: str, version: str | None = None) -> SecretValue:
        """The value of NAME at VERSION; None means the provider's default version (usually latest)."""
        raise NotImplementedError

    def readiness(self, refs: Iterable[tuple[str, str | None]]) -> dict[str, Any]:
        """`{status, detail, missing}` for the given (name, version) pairs; status is ready|missing|error."""
        missing: list[str] = []
        errors: list[str] = []
        unusable: list[str] = []
        for name, version in refs:
            label = name if version in (None, "latest") else f"{name}@{version}"
            try:
                value = self.get(name, version)
            except SecretNotFoundError:
                missing.append(label)
                continue
            except AdapterError as exc:
                errors.append(f"{label}: {exc}")
                unusable.append(label)
                continue
            problem = value.problem() if isinstance(value, SecretValue) else None
            if problem:
                errors.append(f"secret {label!r}: the value {problem}")
                unusable.append(label)
        if errors:
            return {"status": "error", "detail": "; ".join(errors), "missing": missing, "unusable": unusable}
        if missing:
            return {"status": "missing", "detail": "missing: " + ", ".join(missing), "missing": missing}
        return {"status": "ready", "detail": None, "missing": []}


def load_factory(path: str, allowlist: Iterable[str] | None = None) -> Any:
    """Import `module.path:Attr` and return Attr, refusing anything outside the allowlist.

    Attr must be one identifier defined in that module itself, so an allowed
    module cannot be used as a springboard (`allowed.mod:os.system`).
    """
    module_name, sep, attr = path.partition(":")
    parts = module_name.split(".")
    if not sep or not attr.isidentifier() or not all(p.isidentifier() for p in parts):
        raise AdapterError(f"factory {path!r} is not of the form module.path:attr")
    if allowlist is not None and not any(
        module_name == prefix or module_name.startswith(prefix + ".") for prefix in allowlist
    ):
        raise AdapterError(f"factory {path!r} is outside the factory allowlist")
    module = importlib.import_module(module_name)
    obj = getattr(module, attr, None)
    if obj is None:
        raise AdapterError(f"factory {path!r}: module {module_name} has no attribute {attr}")
    if getattr(obj, "__module__", None) != module_name:
        raise AdapterError(f"factory {path!r} is not defined in {module_name}")
    return obj
