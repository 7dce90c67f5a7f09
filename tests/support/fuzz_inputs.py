"""Fuzz inputs and the loaders' contract, shared by the hardening fuzz tests and the bench/fuzz_*.py harnesses.

Mutations work on bytes (so invalid UTF-8, NUL bytes, BOMs and CRLF come up) and draw from an
alphabet of the characters that matter to YAML, TOML and JSON. `mutate(data, rng)` works with a
`random.Random`, so hypothesis (through `st.randoms()`) and atheris (through a seed) share it.
"""

from __future__ import annotations

import random

#: Bytes that change how YAML/TOML/JSON parse, plus encoding hazards.
SPECIAL = [b":", b"-", b"[", b"]", b"{", b"}", b",", b"&a", b"*a", b"!!", b"!!python/object:os.system", b"<<",
           b"#", b"'", b'"', b'"""', b"\n", b"\r\n", b"\r", b"\t", b"  ", b"\x00", b"\xff", b"\xef\xbb\xbf",
           b"\xc3", b"\xed\xa0\x80", b"=", b".", b"---\n", b"...", b"%YAML 1.1\n", b"|", b">", b"?", b"@", b"`",
           b"nan", b".inf", b"-.NaN", b"1e999", b"9" * 5000, b"0x_1", b"1_000", b"2025-13-45", b"null", b"~",
           b"true", b"yes", b"\\u0000", b"\\", b"[[", b"]]", b"\xe2\x80\xa8", b"\x7f", b"\x1b[31m"]


def mutate(data: bytes, rng: random.Random, rounds: int | None = None) -> bytes:
    """`data` with 1-8 random edits: insert, delete, replace, duplicate a slice, or truncate."""
    buf = bytearray(data)
    for _ in range(rounds if rounds is not None else rng.randint(1, 8)):
        op = rng.randrange(6)
        at = rng.randint(0, len(buf))
        if op == 0:  # insert a special token
            buf[at:at] = rng.choice(SPECIAL)
        elif op == 1 and buf:  # delete a slice
            buf[at:at + rng.randint(1, 16)] = b""
        elif op == 2 and buf:  # replace one byte with a random one
            buf[min(at, len(buf) - 1)] = rng.randrange(256)
        elif op == 3 and buf:  # duplicate a line (duplicate keys, repeated tables)
            start = buf.rfind(b"\n", 0, at) + 1
            end = buf.find(b"\n", at)
            end = len(buf) if end < 0 else end + 1
            buf[end:end] = buf[start:end]
        elif op == 4:  # truncate
            del buf[at:]
        else:  # insert random bytes
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(buf)


def check_loader_result(result: object, path: str, raw: bytes) -> str:
    """The loaders' contract on any input: a Document with JSON-compatible data whose positions lie inside
    the file ("doc"), or a non-empty list of diagnostics located in it ("error"); AssertionError otherwise."""
    import json

    from compiler.diagnostics import Diagnostic, Document

    if isinstance(result, Document):
        json.dumps(result.data, allow_nan=False)  # JSON-compatible, no NaN
        # an upper bound on the lines: libyaml also breaks lines at NEL, LS and PS (YAML 1.1's line breaks)
        lines = sum(raw.count(b) for b in (b"\n", b"\r", b"\xc2\x85", b"\xe2\x80\xa8", b"\xe2\x80\xa9")) + 1
        for span in list(result.positions.values()) + list(result.key_positions.values()):
            assert span.file == path and 1 <= span.line <= lines and span.col >= 1, span
        return "doc"
    assert isinstance(result, list) and result, f"neither a Document nor diagnostics: {result!r}"
    for diag in result:
        assert isinstance(diag, Diagnostic) and diag.message and diag.rule, diag
        assert diag.span is not None and diag.span.file == path and diag.span.line >= 1 and diag.span.col >= 1, diag
    return "error"
