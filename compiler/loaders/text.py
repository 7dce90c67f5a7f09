"""Bytes to text for every loader: strict UTF-8 (a BOM is allowed), errors with a position."""

from __future__ import annotations

from compiler.diagnostics import Diagnostic, Span


def decode_text(raw: bytes, path: str) -> str | Diagnostic:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Diagnostic("encoding", f"invalid UTF-8 byte 0x{raw[exc.start]:02x}",
                          offset_span(raw, exc.start, path), hint="save the file as UTF-8")


def offset_span(raw: bytes, offset: int, path: str) -> Span:
    line = raw.count(b"\n", 0, offset) + 1
    col = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
    return Span(path, line, col)
