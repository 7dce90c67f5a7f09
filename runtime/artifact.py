"""The one reader of compiled artifacts: bytes -> JSON object -> digest check -> runtime.model objects.

The runtime loads and verifies through `load_artifacts`; the compiler's audit commands (verify, diff,
report, procfile) read through `parse`, `kind_of` and the decoders here, so every reader agrees on what
an artifact is. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from runtime import model
from runtime.canonical import compute_digest, pretty_bytes


class ArtifactError(Exception):
    """An artifact is missing, unreadable, malformed or fails its digest; the message names the file."""


class StaleArtifactError(ArtifactError):
    """A settings file changed after the artifact was compiled from it."""


def _display(path: Path, base: Path | None = None) -> str:
    if base is not None:
        try:
            return str(path.relative_to(base))
        except ValueError:
            pass
    return str(path)


def read_bytes(path: Path, name: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"{name}: no such artifact: run oneiric compile") from None
    except OSError as exc:
        raise ArtifactError(f"{name}: cannot read: {exc.strerror or exc}") from None


def parse(raw: bytes, name: str | None) -> dict[str, Any]:
    """Artifact bytes -> its JSON object (not yet checked against its digest); the error's message starts
    with `name` when one is given."""
    where = f"{name}: " if name else ""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ArtifactError(f"{where}not JSON ({exc}): not an artifact, or a damaged one") from None
    if not isinstance(obj, dict):
        raise ArtifactError(f"{where}not an Oneiric artifact (expected a JSON object, not {type(obj).__name__})")
    return obj


def kind_of(obj: dict[str, Any], name: str) -> str:
    """"manifest" or "profile", by the artifact's `format`."""
    fmt = obj.get("format")
    if fmt not in model.KINDS:
        raise ArtifactError(f"{name}: unknown artifact format {fmt!r} (expected one of: {', '.join(sorted(model.KINDS))})")
    return model.KINDS[fmt]


def input_sha256(item: model.Input, project_dir: Path) -> str | None:
    """The sha256 of an input file as it is on disk now; None when it is not there (OSError otherwise)."""
    try:
        return hashlib.sha256((project_dir / item.path).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def read_verified(path: Path, expected_format: str, *, base: Path | None = None) -> dict[str, Any]:
    """Parse one artifact file and check format, canonical encoding and recorded digest.

    Any change to the file's bytes after compile (one flipped byte included)
    fails here: either the digest or the canonical re-encoding differs.
    """
    name = _display(path, base)
    raw = read_bytes(path, name)
    obj = parse(raw, name)
    fmt = obj.get("format")
    if fmt != expected_format:
        raise ArtifactError(f"{name}: format is {fmt!r}, expected {expected_format!r}")
    recorded = obj.get("digest")
    computed = compute_digest(obj)
    if recorded != computed:
        raise ArtifactError(
            f"{name}: digest mismatch: recorded {recorded}, computed {computed}; "
            "the artifact was changed after compile: run oneiric compile")
    if pretty_bytes(obj) != raw:
        raise ArtifactError(f"{name}: bytes differ from the canonical encoding of its content "
                            "(edited after compile?): run oneiric compile")
    return obj


# ---------------------------------------------------------------- decoding

def _build(cls: type, data: Any, where: str) -> Any:
    """Build a model object from a JSON object; unknown keys are ignored, missing ones take defaults."""
    if not isinstance(data, dict):
        raise ArtifactError(f"{where}: expected an object for {cls.__name__}")
    kwargs = {name: data[name] for name in model.fields(cls) if name in data}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ArtifactError(f"{where}: {cls.__name__}: {exc}") from None


def _tuple(value: Any) -> tuple:
    return tuple(value) if isinstance(value, list) else tuple(value or ())


def decode_entry(data: dict[str, Any], where: str) -> model.Entry:
    data = dict(data)
    data["requires_secrets"] = _tuple(data.get("requires_secrets"))
    dag = data.get("dag")
    if dag is not None:
        nodes = []
        for node in dag.get("nodes", []):
            node = dict(node)
            node["depends_on"] = _tuple(node.get("depends_on"))
            if node.get("retry_policy") is not None:
                node["retry_policy"] = _build(model.RetryPolicy, node["retry_policy"], where)
            else:
                node.pop("retry_policy", None)
            nodes.append(_build(model.DagNode, node, where))
        data["dag"] = model.Dag(nodes=tuple(nodes))
    return _build(model.Entry, data, where)


def _shape_errors(decode):
    """A well-digested artifact of the wrong shape (a list where an object belongs, ...) is refused with
    ArtifactError naming the file, like any other bad artifact, instead of escaping as a TypeError."""
    def wrapper(obj: Any, name: str = decode.__defaults__[0]) -> Any:
        try:
            return decode(obj, name)
        except (TypeError, AttributeError, ValueError, KeyError) as exc:
            raise ArtifactError(f"{name}: malformed artifact ({type(exc).__name__}: {exc}): run oneiric compile") \
                from None
    wrapper.__name__, wrapper.__doc__ = decode.__name__, decode.__doc__
    return wrapper


@_shape_errors
def decode_manifest(obj: dict[str, Any], name: str = "manifest") -> model.ManifestArtifact:
    data = dict(obj)
    data["sources"] = _tuple(obj.get("sources"))
    data["inputs"] = tuple(_build(model.Input, i, name) for i in obj.get("inputs", []))
    data["entries"] = tuple(decode_entry(e, name) for e in obj.get("entries", []))
    return _build(model.ManifestArtifact, data, name)


@_shape_errors
def decode_profile(obj: dict[str, Any], name: str = "profile") -> model.ProfileArtifact:
    data = dict(obj)
    prof = dict(obj.get("profile") or {})
    prof["extends"] = _tuple(prof.get("extends"))
    prof["toggles"] = _build(model.Toggles, prof.get("toggles") or {}, name)
    data["profile"] = _build(model.Profile, prof, name)
    data["inputs"] = tuple(_build(model.Input, i, name) for i in obj.get("inputs", []))
    data["selections"] = tuple(_build(model.Selection, s, name) for s in obj.get("selections", []))
    secrets = []
    for s in obj.get("secrets", []):
        s = dict(s)
        s["used_by"] = _tuple(s.get("used_by"))
        secrets.append(_build(model.SecretRef, s, name))
    data["secrets"] = tuple(secrets)
    data["env_keys"] = tuple(_build(model.EnvKey, k, name) for k in obj.get("env_keys", []))
    data["manifest"] = _build(model.ManifestLink, obj.get("manifest") or {}, name)
    data.setdefault("settings", {})
    data.setdefault("provenance", {})
    return _build(model.ProfileArtifact, data, name)


def decode(obj: dict[str, Any], name: str) -> model.ManifestArtifact | model.ProfileArtifact:
    """The model object of either kind of artifact (ArtifactError for an unknown format or a wrong shape)."""
    return decode_profile(obj, name) if kind_of(obj, name) == "profile" else decode_manifest(obj, name)


# ---------------------------------------------------------------- loading

class LoadedArtifacts:
    __slots__ = ("profile", "manifest", "profile_path", "manifest_path")

    def __init__(self, profile: model.ProfileArtifact, manifest: model.ManifestArtifact, profile_path: Path,
                 manifest_path: Path) -> None:
        self.profile, self.manifest = profile, manifest
        self.profile_path, self.manifest_path = profile_path, manifest_path


def load_artifacts(profile_path: Path, *, manifest_path: Path | None = None,
                   base: Path | None = None) -> LoadedArtifacts:
    """Load the profile artifact and the manifest it links (or `manifest_path`), verifying both digests
    and that the manifest is the one the profile was compiled with."""
    profile_obj = read_verified(profile_path, model.PROFILE_FORMAT, base=base)
    profile = decode_profile(profile_obj, _display(profile_path, base))
    link = profile.manifest
    if manifest_path is None:
        if not link.path:
            raise ArtifactError(f"{_display(profile_path, base)}: no manifest link")
        manifest_path = profile_path.parent / link.path
    manifest_obj = read_verified(manifest_path, model.MANIFEST_FORMAT, base=base)
    if manifest_obj["digest"] != link.digest:
        raise ArtifactError(
            f"{_display(manifest_path, base)}: digest {manifest_obj['digest']} is not the manifest "
            f"{_display(profile_path, base)} was compiled with ({link.digest}): run oneiric compile")
    manifest = decode_manifest(manifest_obj, _display(manifest_path, base))
    return LoadedArtifacts(profile, manifest, profile_path, manifest_path)


def check_stale(profile: model.ProfileArtifact, project_dir: Path) -> None:
    """Refuse a profile artifact whose settings inputs changed since compile.

    Settings files absent from the project dir (a runtime-only image) are not checked.
    """
    for item in profile.inputs:
        if item.kind != "settings":
            continue
        try:
            actual = input_sha256(item, project_dir)
        except OSError as exc:
            raise StaleArtifactError(f"{item.path}: cannot read to check staleness: {exc}") from None
        if actual is not None and actual != item.sha256:
            raise StaleArtifactError(
                f"{item.path} changed since the profile artifact was compiled: run oneiric compile")
