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


def check_items(raw: bytes, path: str, limit: int, rule: str) -> Diagnostic | None:
    """Refuse a file with more than `limit` lines plus commas (a bound on its values) before parsing it.

    Parsing costs about 10-80 microseconds per value in pure Python, so this keeps any accepted
    file well under a second; the span is where the limit was crossed.
    """
    if raw.count(b"\n") + raw.count(b",") <= limit:
        return None
    end = len(raw)
    nl, comma = raw.find(b"\n"), raw.find(b",")
    nl, comma = (end if nl < 0 else nl), (end if comma < 0 else comma)
    for _ in range(limit):  # find the (limit + 1)-th separator; each find resumes where it stopped
        if nl < comma:
            nl = raw.find(b"\n", nl + 1)
            nl = end if nl < 0 else nl
        else:
            comma = raw.find(b",", comma + 1)
            comma = end if comma < 0 else comma
    at = min(nl, comma) + 1
    return Diagnostic(rule, f"more than {limit} lines and commas (values); the file is too large to be a config file",
                      offset_span(raw, at - 1, path), hint="split it into several files")


def offset_span(raw: bytes, offset: int, path: str) -> Span:
    line = raw.count(b"\n", 0, offset) + 1
    col = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
    return Span(path, line, col)
