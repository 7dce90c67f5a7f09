"""The compiler's writer of pretty artifact bytes: orjson where that is provably the canonical encoding.

runtime.canonical.pretty_bytes is the definition (and what the runtime verifies with); it spends
~0.15 s in Python on a 10k-entry artifact, orjson ~0.01 s. The two spell everything alike (sorted keys
by code point, 2-space indent, UTF-8 unescaped, json's control-character escapes, the same integers and
`float.__repr__` spellings) except floats with 0 < |x| < 1e-4 (Python `1e-05`, orjson `0.00001`;
`1.5e-07` vs `1.5e-7`). Python spells exactly those with an exponent `e-`, so the compact text the digest
is taken over tells, before orjson runs, whether any such float is in the data. What orjson refuses
(integers beyond 64 bits, non-string keys, lone surrogates, nesting deeper than 255) falls back too.
tests/compiler/test_fastjson.py checks byte identity on generated data.
"""

from __future__ import annotations

from typing import Any

import orjson

from runtime.canonical import pretty_bytes

_PRETTY = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
_DIGITS = frozenset("0123456789")


def floats_spelled_alike(compact: str) -> bool:
    """False when compact JSON text may hold a float Python writes with a negative exponent (`2e-05`).

    A match inside a string value only costs the fallback."""
    at = compact.find("e-")
    while at != -1:
        if at and compact[at - 1] in _DIGITS:
            return False
        at = compact.find("e-", at + 2)
    return True


def pretty_artifact_bytes(data: dict[str, Any], compact: str) -> bytes:
    """Exactly `runtime.canonical.pretty_bytes(data)`.

    `compact` is `runtime.canonical.compact_text` of data, or of data less keys whose values are plain
    strings (the digest): it has already refused NaN and infinities and shows every number as json spells it.
    """
    if floats_spelled_alike(compact):
        try:
            return orjson.dumps(data, option=_PRETTY) + b"\n"
        except orjson.JSONEncodeError:
            pass
    return pretty_bytes(data)
