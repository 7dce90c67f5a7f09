"""Emit stage: the one writer of artifact bytes (canonical JSON, digest, atomic replace)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from compiler.convert import unstructure
from compiler.fastjson import pretty_artifact_bytes
from runtime.canonical import compact_text, digest_of_compact
from runtime.model import replace


def _sealed(artifact: Any) -> tuple[dict[str, Any], str]:
    """The artifact as plain data with its digest filled in, and the compact text the digest is taken over."""
    data = unstructure(replace(artifact, digest=""))
    del data["digest"]
    compact = compact_text(data)
    data["digest"] = digest_of_compact(compact)
    return data, compact


def to_json(artifact: Any) -> dict[str, Any]:
    """The artifact as plain data with its digest filled in."""
    return _sealed(artifact)[0]


def digest_of(artifact: Any) -> str:
    return to_json(artifact)["digest"]


def encode(artifact: Any) -> tuple[bytes, str]:
    """The artifact's file bytes and its digest, from one unstructuring."""
    data, compact = _sealed(artifact)
    return pretty_artifact_bytes(data, compact), data["digest"]


def render(artifact: Any) -> bytes:
    return encode(artifact)[0]


class EmitError(Exception):
    """Writing failed; every file that existed before is unchanged."""


def write_all(files: dict[Path, bytes]) -> None:
    """Write every file or none: all temp files first, then renames (each atomic on POSIX)."""
    temps: dict[Path, str] = {}
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            temps[path] = tmp
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
    except OSError as exc:
        for tmp in temps.values():
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise EmitError(f"cannot write {exc.filename or 'artifacts'}: {exc.strerror or exc}") from exc
    for path, tmp in temps.items():
        os.replace(tmp, path)


def stale_files(files: dict[Path, bytes]) -> list[Path]:
    """Files whose bytes on disk differ from what compile would write."""
    out = []
    for path, data in files.items():
        try:
            if path.read_bytes() == data:
                continue
        except OSError:
            pass
        out.append(path)
    return out
