"""The compiled-artifact contract, shared by the compiler (writer) and the runtime (reader).

Plain immutable classes with `__slots__`, standard library only: no I/O, no validation, no
(de)serialisation here. Field names are the JSON keys of the artifacts; each class lists its fields in
`__slots__` (in constructor order) and their types as annotations, which the compiler's cattrs
converter reads (compiler/convert.py); `runtime.artifact` decodes the same JSON with the standard
library. See docs/artifacts.md for the full format.

Not dataclasses: importing `dataclasses` (and the `inspect` it pulls in) and generating the methods
cost the cold start about 15 ms before the first 200 (bench/coldstart.py); these classes import in
under a millisecond and behave the same way: keyword or positional construction with defaults,
equality and hashing by fields, a dataclass-like repr, no assignment after construction, and
`replace(obj, **changes)` for a modified copy.
"""

from __future__ import annotations

from typing import Any

MANIFEST_FORMAT = "oneiric.manifest/1"
PROFILE_FORMAT = "oneiric.profile/1"
#: The artifact kind each `format` names.
KINDS = {MANIFEST_FORMAT: "manifest", PROFILE_FORMAT: "profile"}

#: Domains a manifest entry may belong to.
DOMAINS = ("adapter", "action", "service", "task", "event", "workflow")

_set = object.__setattr__


class Record:
    """Base of the model classes: fields in `__slots__`, set once in `__init__` through `_fill`."""

    __slots__ = ()

    def _fill(self, *values: Any) -> None:
        """Set every field, in `__slots__` order (only constructors call this)."""
        for name, value in zip(self.__slots__, values):
            _set(self, name, value)

    def _values(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot assign {name!r} "
                             "(use runtime.model.replace)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n in self.__slots__)})"

    def __reduce__(self) -> tuple:  # copy and pickle rebuild through the constructor
        return type(self), self._values()


def fields(cls: type[Record]) -> tuple[str, ...]:
    """The field names of a model class, in constructor order."""
    return cls.__slots__


def as_dict(obj: Record) -> dict[str, Any]:
    """Field name -> value, one level deep (nested model objects stay objects)."""
    return {name: getattr(obj, name) for name in obj.__slots__}


def replace(obj: Record, **changes: Any) -> Any:
    """A copy of `obj` with some fields changed (TypeError for a name that is not a field)."""
    unknown = sorted(set(changes) - set(obj.__slots__))
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {', '.join(map(repr, unknown))}")
    return type(obj)(**{**as_dict(obj), **changes})


class Input(Record):
    """A source file the artifact was compiled from, relative to the project dir."""

    __slots__ = ("path", "sha256", "kind")
    path: str
    sha256: str
    kind: str  # "settings" | "manifest"

    def __init__(self, path: str, sha256: str, kind: str) -> None:
        self._fill(path, sha256, kind)


class RetryPolicy(Record):
    __slots__ = ("attempts", "base_delay", "max_delay", "jitter")
    attempts: int
    base_delay: float
    max_delay: float
    jitter: float  # fraction of the delay added at random, 0..1

    def __init__(self, attempts: int = 1, base_delay: float = 0.5, max_delay: float = 30.0,
                 jitter: float = 0.0) -> None:
        self._fill(attempts, base_delay, max_delay, jitter)


_NO_RETRY = RetryPolicy()


#: a node attempt's default `timeout_seconds` (the manifest schema's default too)
DEFAULT_NODE_TIMEOUT = 600.0


class DagNode(Record):
    __slots__ = ("id", "task", "depends_on", "payload", "retry_policy", "timeout_seconds")
    id: str
    task: str
    depends_on: tuple[str, ...]
    payload: dict[str, Any]
    retry_policy: RetryPolicy
    #: seconds one attempt of the node may run; past it the attempt fails and its thread is abandoned
    timeout_seconds: float

    def __init__(self, id: str, task: str, depends_on: tuple[str, ...] = (), payload: dict[str, Any] | None = None,
                 retry_policy: RetryPolicy = _NO_RETRY, timeout_seconds: float = DEFAULT_NODE_TIMEOUT) -> None:
        self._fill(id, task, depends_on, {} if payload is None else payload, retry_policy, timeout_seconds)


class Dag(Record):
    __slots__ = ("nodes",)
    nodes: tuple[DagNode, ...]

    def __init__(self, nodes: tuple[DagNode, ...] = ()) -> None:
        self._fill(nodes)


class Entry(Record):
    """One manifest entry, as packed into the manifest artifact."""

    __slots__ = ("domain", "key", "provider", "factory", "priority", "stack_level", "version", "metadata",
                 "settings_schema", "requires_secrets", "dag", "source")
    domain: str
    key: str
    provider: str
    factory: str
    priority: int
    stack_level: int
    version: str | None
    metadata: dict[str, Any]
    settings_schema: dict[str, Any] | None
    requires_secrets: tuple[str, ...]
    dag: Dag | None
    source: str  # "deployment/manifests/x.yaml:12:5", where the entry starts

    def __init__(self, domain: str, key: str, provider: str, factory: str, priority: int = 0, stack_level: int = 0,
                 version: str | None = None, metadata: dict[str, Any] | None = None,
                 settings_schema: dict[str, Any] | None = None, requires_secrets: tuple[str, ...] = (),
                 dag: Dag | None = None, source: str = "") -> None:
        self._fill(domain, key, provider, factory, priority, stack_level, version,
                   {} if metadata is None else metadata, settings_schema, requires_secrets, dag, source)


class ManifestArtifact(Record):
    __slots__ = ("format", "compiler_version", "sources", "inputs", "entries", "digest")
    format: str
    compiler_version: str
    sources: tuple[str, ...]  # each input manifest's top-level `source`
    inputs: tuple[Input, ...]
    entries: tuple[Entry, ...]
    digest: str

    def __init__(self, format: str, compiler_version: str, sources: tuple[str, ...], inputs: tuple[Input, ...],
                 entries: tuple[Entry, ...], digest: str = "") -> None:
        self._fill(format, compiler_version, sources, inputs, entries, digest)


class Toggles(Record):
    __slots__ = ("watchers_enabled", "remote_enabled", "inline_manifest_only", "supervisor_enabled")
    watchers_enabled: bool
    remote_enabled: bool
    inline_manifest_only: bool
    supervisor_enabled: bool

    def __init__(self, watchers_enabled: bool, remote_enabled: bool, inline_manifest_only: bool,
                 supervisor_enabled: bool) -> None:
        self._fill(watchers_enabled, remote_enabled, inline_manifest_only, supervisor_enabled)


class Profile(Record):
    __slots__ = ("name", "base", "extends", "toggles")
    name: str
    base: str  # the built-in profile at the root of the extends chain
    extends: tuple[str, ...]  # the chain from this profile to its built-in root
    toggles: Toggles

    def __init__(self, name: str, base: str, extends: tuple[str, ...], toggles: Toggles) -> None:
        self._fill(name, base, extends, toggles)


class Selection(Record):
    """The provider chosen for one (domain, key), with its resolved settings."""

    __slots__ = ("domain", "key", "provider", "factory", "settings", "origin", "reason", "required",
                 "settings_path")
    domain: str
    key: str
    provider: str
    factory: str
    settings: dict[str, Any]
    origin: str  # "builtin" or the manifest position of the entry
    reason: str  # why it won: "selected at config/x.toml:9:1", "highest (priority, stack_level)", ...
    required: bool
    #: dotted path of these settings inside ProfileArtifact.settings ("secrets",
    #: "adapters.provider_settings.<provider>"), where env overrides land; "" if none
    settings_path: str

    def __init__(self, domain: str, key: str, provider: str, factory: str, settings: dict[str, Any], origin: str,
                 reason: str, required: bool = True, settings_path: str = "") -> None:
        self._fill(domain, key, provider, factory, settings, origin, reason, required, settings_path)


class SecretRef(Record):
    __slots__ = ("ref", "name", "version", "used_by")
    ref: str  # "secret://NAME" or "secret://NAME@VERSION"
    name: str
    version: str  # "latest" unless pinned
    used_by: tuple[str, ...]  # dotted settings paths holding this reference

    def __init__(self, ref: str, name: str, version: str, used_by: tuple[str, ...]) -> None:
        self._fill(ref, name, version, used_by)


class EnvKey(Record):
    __slots__ = ("name", "path", "type", "secret_bound", "constraints")
    name: str  # ONEIRIC_RUNTIME_SUPERVISOR__ENABLED
    path: str  # runtime.supervisor.enabled
    type: str  # JSON Schema type: string | integer | number | boolean | array
    secret_bound: bool  # holds a secret: env may only name another secret:// reference
    #: what an override must meet, as JSON Schema keywords (runtime.contract.CONSTRAINT_KEYWORDS)
    constraints: dict[str, Any]

    def __init__(self, name: str, path: str, type: str, secret_bound: bool = False,
                 constraints: dict[str, Any] | None = None) -> None:
        self._fill(name, path, type, secret_bound, {} if constraints is None else constraints)

    def __hash__(self) -> int:  # hashable like before constraints: by the fields that are not a dict
        return hash((self.name, self.path, self.type, self.secret_bound))


class ManifestLink(Record):
    __slots__ = ("path", "digest")
    path: str  # the manifest artifact, relative to the profile artifact's directory
    digest: str

    def __init__(self, path: str, digest: str) -> None:
        self._fill(path, digest)


class ProfileArtifact(Record):
    __slots__ = ("format", "compiler_version", "profile", "inputs", "settings", "provenance", "selections",
                 "secrets", "env_keys", "manifest", "digest")
    format: str
    compiler_version: str
    profile: Profile
    inputs: tuple[Input, ...]
    settings: dict[str, Any]
    provenance: dict[str, str]  # dotted path -> "config/x.toml:12:1" | "profile:serverless" | "schema default"
    selections: tuple[Selection, ...]
    secrets: tuple[SecretRef, ...]
    env_keys: tuple[EnvKey, ...]
    manifest: ManifestLink
    digest: str

    def __init__(self, format: str, compiler_version: str, profile: Profile, inputs: tuple[Input, ...],
                 settings: dict[str, Any], provenance: dict[str, str], selections: tuple[Selection, ...],
                 secrets: tuple[SecretRef, ...], env_keys: tuple[EnvKey, ...], manifest: ManifestLink,
                 digest: str = "") -> None:
        self._fill(format, compiler_version, profile, inputs, settings, provenance, selections, secrets, env_keys,
                   manifest, digest)
