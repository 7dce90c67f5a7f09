"""The compiled-artifact contract, shared by the compiler (writer) and the runtime (reader).

Plain frozen dataclasses, standard library only: no I/O, no validation, no
(de)serialisation here. Field names are the JSON keys of the artifacts; the
compiler unstructures these with cattrs, `runtime.artifact` decodes them with
the standard library. See docs/artifacts.md for the full format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MANIFEST_FORMAT = "oneiric.manifest/1"
PROFILE_FORMAT = "oneiric.profile/1"
#: The artifact kind each `format` names.
KINDS = {MANIFEST_FORMAT: "manifest", PROFILE_FORMAT: "profile"}

#: Domains a manifest entry may belong to.
DOMAINS = ("adapter", "action", "service", "task", "event", "workflow")


@dataclass(frozen=True, slots=True)
class Input:
    """A source file the artifact was compiled from, relative to the project dir."""

    path: str
    sha256: str
    kind: str  # "settings" | "manifest"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 1
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.0  # fraction of the delay added at random, 0..1


@dataclass(frozen=True, slots=True)
class DagNode:
    id: str
    task: str
    depends_on: tuple[str, ...] = ()
    payload: dict[str, Any] = field(default_factory=dict)
    retry_policy: RetryPolicy = RetryPolicy()


@dataclass(frozen=True, slots=True)
class Dag:
    nodes: tuple[DagNode, ...] = ()


@dataclass(frozen=True, slots=True)
class Entry:
    """One manifest entry, as packed into the manifest artifact."""

    domain: str
    key: str
    provider: str
    factory: str
    priority: int = 0
    stack_level: int = 0
    version: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    settings_schema: dict[str, Any] | None = None
    requires_secrets: tuple[str, ...] = ()
    dag: Dag | None = None
    source: str = ""  # "deployment/manifests/x.yaml:12:5", where the entry starts


@dataclass(frozen=True, slots=True)
class ManifestArtifact:
    format: str
    compiler_version: str
    sources: tuple[str, ...]  # each input manifest's top-level `source`
    inputs: tuple[Input, ...]
    entries: tuple[Entry, ...]
    digest: str = ""


@dataclass(frozen=True, slots=True)
class Toggles:
    watchers_enabled: bool
    remote_enabled: bool
    inline_manifest_only: bool
    supervisor_enabled: bool


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    base: str  # the built-in profile at the root of the extends chain
    extends: tuple[str, ...]  # the chain from this profile to its built-in root
    toggles: Toggles


@dataclass(frozen=True, slots=True)
class Selection:
    """The provider chosen for one (domain, key), with its resolved settings."""

    domain: str
    key: str
    provider: str
    factory: str
    settings: dict[str, Any]
    origin: str  # "builtin" or the manifest position of the entry
    reason: str  # why it won: "selected at config/x.toml:9:1", "highest (priority, stack_level)", ...
    required: bool = True
    #: dotted path of these settings inside ProfileArtifact.settings ("secrets",
    #: "adapters.provider_settings.<provider>"), where env overrides land; "" if none
    settings_path: str = ""


@dataclass(frozen=True, slots=True)
class SecretRef:
    ref: str  # "secret://NAME" or "secret://NAME@VERSION"
    name: str
    version: str  # "latest" unless pinned
    used_by: tuple[str, ...]  # dotted settings paths holding this reference


@dataclass(frozen=True, slots=True)
class EnvKey:
    name: str  # ONEIRIC_RUNTIME_SUPERVISOR__ENABLED
    path: str  # runtime.supervisor.enabled
    type: str  # JSON Schema type: string | integer | number | boolean | array
    secret_bound: bool = False  # holds a secret:// reference: env is ignored with a warning


@dataclass(frozen=True, slots=True)
class ManifestLink:
    path: str  # the manifest artifact, relative to the profile artifact's directory
    digest: str


@dataclass(frozen=True, slots=True)
class ProfileArtifact:
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
    digest: str = ""
