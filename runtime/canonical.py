"""Canonical JSON: the one byte encoding of artifacts, shared by the writer (compiler) and the verifier (runtime)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

DIGEST_PREFIX = "sha256:"


_COMPACT = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def compact_text(obj: Any) -> str:
    """The compact encoding as text: sorted keys, no whitespace, no NaN/Infinity (ValueError), not ASCII-escaped."""
    return _COMPACT.encode(obj)


def compact_bytes(obj: Any) -> bytes:
    """The encoding the digest is taken over (and every message and stored value): compact text, UTF-8."""
    return _COMPACT.encode(obj).encode("utf-8")


def pretty_bytes(obj: Any) -> bytes:
    """The on-disk encoding: sorted keys, 2-space indent, UTF-8, trailing newline."""
    text = json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def compute_digest(obj: dict[str, Any]) -> str:
    """`sha256:` + hex over the compact encoding of the object without its `digest` key."""
    body = {k: v for k, v in obj.items() if k != "digest"}
    return DIGEST_PREFIX + hashlib.sha256(compact_bytes(body)).hexdigest()


def sha256_file_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
