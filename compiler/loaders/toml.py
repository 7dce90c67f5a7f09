"""Load stage for TOML 1.0.0: tomli parses and refuses, a small scanner maps every key and value to its line.

Oneiric reads TOML 1.0.0, the version Python's own `tomllib` reads (the runtime reads the
same settings file with it). tomli is pinned to its TOML 1.0 releases in pyproject.toml (2.4
moved to TOML 1.1), so the accepted language cannot drift with an install; it refuses what
1.0 refuses (numbers by the spec's grammar, control characters, 1.1-only syntax), always at a
line and column. tomli keeps no positions, so after it has accepted the text we walk the
same text once more with a minimal scanner that records where each key and value starts
(JSON pointer -> Span), array-of-tables element indices and inline tables included.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import re
from typing import Any

import tomli

from compiler.diagnostics import Diagnostic, Document, Span, pointer_from_parts, pointer_join
from compiler.loaders.text import check_items, decode_text, offset_span

#: The TOML version Oneiric accepts (see docs/config-languages.md).
TOML_VERSION = "1.0.0"
#: Largest file accepted, in bytes.
MAX_BYTES = 512 * 1024
#: Most lines plus commas accepted (a bound on the number of values, so parsing stays under a second).
MAX_ITEMS = 10_000
#: Nesting depth named when the parser runs out of recursion.
MAX_DEPTH = 100
#: ints wider than this cannot be written as JSON text (Python's 4300-digit str() limit)
_MAX_INT_BITS = 14_000
_BARE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_AT = re.compile(r" \(at (?:line (\d+), column (\d+)|end of document)\)$")
_REDEFINED = ("Cannot overwrite", "Cannot declare", "Cannot mutate", "Duplicate")
_LONG_NUMBER = re.compile(r"[0-9_]{4300,}")


def load_toml(raw: bytes, path: str) -> Document | list[Diagnostic]:
    """Parse one TOML 1.0 file; return it with positions, or every diagnostic found."""
    if len(raw) > MAX_BYTES:
        return [Diagnostic("toml.too-large", f"file is {len(raw)} bytes; the limit is {MAX_BYTES}", Span(path, 1, 1))]
    too_many = check_items(raw, path, MAX_ITEMS, "toml.too-large")
    if too_many is not None:
        return [too_many]
    text = decode_text(raw, path)
    if isinstance(text, Diagnostic):
        return [text]
    try:
        data = tomli.loads(text)
    except tomli.TOMLDecodeError as exc:
        return [_refusal(exc, text, path)]
    except RecursionError:
        return [_too_deep(raw, path)]
    except ValueError:  # an integer over Python's 4300-digit limit
        long = _LONG_NUMBER.search(text)
        span = offset_span(text.encode(), len(text[:long.start()].encode()), path) if long else Span(path, 1, 1)
        return [Diagnostic("toml.too-large", "integer too large to be written as JSON", span)]
    scanner = _Scanner(text, path)
    try:
        scanner.scan()
    except (_ScanError, IndexError, RecursionError):  # pragma: no cover - tomli accepted it: a scanner bug
        pass  # keys not reached fall back to their nearest ancestor's position
    errors: list[Diagnostic] = []
    data = _plain(data, "", errors, scanner, path)
    if errors:
        return errors
    return Document(path, data, hashlib.sha256(raw).hexdigest(), scanner.positions, scanner.key_positions)


def _refusal(exc: tomli.TOMLDecodeError, text: str, path: str) -> Diagnostic:
    """tomli's error at its line and column; a redefinition named by the scanner (with the first place)."""
    message = str(exc)
    at = _AT.search(message)
    message = message[:at.start()] if at else message
    if at and at.group(1):
        span = Span(path, int(at.group(1)), int(at.group(2)))
    else:  # at the end of the document
        span = offset_span(text.encode(), len(text.encode()), path)
    if not message.startswith(_REDEFINED):
        return Diagnostic("toml.syntax", message, span)
    scanner = _Scanner(text, path)
    try:
        scanner.scan()
    except (_ScanError, IndexError, RecursionError):
        pass
    same_line = [d for d in scanner.duplicates if d.span.line == span.line]
    return same_line[0] if same_line else Diagnostic("toml.duplicate-key", message, span, hint="define each key "
                                                     "and table once")


def _too_deep(raw: bytes, path: str) -> Diagnostic:
    """The error for text that exhausted the parser's recursion: located at the first bracket nested
    deeper than MAX_DEPTH (counted naively, brackets in strings too), else at 1:1."""
    span = Span(path, 1, 1)
    depth = 0
    for offset, byte in enumerate(raw):
        if byte in b"[{":
            depth += 1
            if depth > MAX_DEPTH:
                span = offset_span(raw, offset, path)
                break
        elif byte in b"]}":
            depth = max(depth - 1, 0)
    return Diagnostic("toml.too-deep", f"arrays or inline tables nested deeper than {MAX_DEPTH} levels", span)


def _plain(value: Any, pointer: str, errors: list[Diagnostic], scanner: "_Scanner", path: str) -> Any:
    """Normalise parsed values to JSON-compatible data (dates become ISO strings)."""
    if isinstance(value, dict):
        return {k: _plain(v, pointer_join(pointer, k), errors, scanner, path) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, f"{pointer}/{i}", errors, scanner, path) for i, v in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        errors.append(Diagnostic("toml.nan", "NaN and infinity are not allowed",
                                 scanner.positions.get(pointer, Span(path, 1, 1)), pointer))
        return None
    if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:  # 0x/0b/0o: no digit limit applies
        errors.append(Diagnostic("toml.too-large", "integer too large to be written as JSON",
                                 scanner.positions.get(pointer, Span(path, 1, 1)), pointer))
        return None
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    return value


class _ScanError(Exception):
    pass


class _Scanner:
    """Records the position of every key and value of text the parser accepted (and spots redefinitions
    so a refusal can name both places)."""

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.i = 0
        self.line = 1
        self.line_start = 0
        self.positions: dict[str, Span] = {}
        self.key_positions: dict[str, Span] = {}
        self.duplicates: list[Diagnostic] = []
        self._aot: dict[tuple, int] = {}  # array-of-tables path (indices included) -> elements so far
        self._headers: set[tuple] = set()

    # -- low-level ---------------------------------------------------------
    def span(self) -> Span:
        return Span(self.path, self.line, self.i - self.line_start + 1)

    def peek(self, n: int = 1) -> str:
        return self.text[self.i:self.i + n]

    def advance(self, n: int = 1) -> None:
        for _ in range(n):
            if self.text[self.i] == "\n":
                self.line += 1
                self.line_start = self.i + 1
            self.i += 1

    def skip_ws(self, newlines: bool = False) -> None:
        while self.i < len(self.text):
            c = self.text[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.advance()
            elif c == "#":
                while self.i < len(self.text) and self.text[self.i] != "\n":
                    self.advance()
            else:
                return

    # -- grammar -----------------------------------------------------------
    def scan(self) -> None:
        current: tuple = ()
        while True:
            self.skip_ws(newlines=True)
            if self.i >= len(self.text):
                return
            start = self.span()
            if self.peek(2) == "[[":
                self.advance(2)
                full = self.header(self.key(), start)
                self.skip_ws()
                self.advance(2)
                self.positions.setdefault(pointer_from_parts(full), start)
                index = self._aot.get(full, 0)
                self._aot[full] = index + 1
                current = full + (index,)
                self.positions[pointer_from_parts(current)] = start
            elif self.peek() == "[":
                self.advance()
                current = self.header(self.key(), start)
                self.skip_ws()
                self.advance()
                if current in self._headers:
                    self.duplicate(current, start)
                self._headers.add(current)
                self.positions.setdefault(pointer_from_parts(current), start)
            else:
                self.key_value(current)

    def header(self, keys: list[tuple[str, Span]], start: Span) -> tuple:
        """A header's path, with the current element index after each array of tables it passes through;
        each table it names gets this header as its key position, unless mentioned before."""
        path: tuple = ()
        for n, (name, _) in enumerate(keys):
            path += (name,)
            self.key_positions.setdefault(pointer_from_parts(path), start)
            if n < len(keys) - 1:
                self.positions.setdefault(pointer_from_parts(path), start)
                if path in self._aot:
                    path += (self._aot[path] - 1,)
        return path

    def key_value(self, prefix: tuple) -> None:
        keys = self.key()
        parts = prefix + tuple(k for k, _ in keys)
        walked = prefix
        for name, span in keys[:-1]:
            walked += (name,)
            self.key_positions.setdefault(pointer_from_parts(walked), span)
            self.positions.setdefault(pointer_from_parts(walked), span)
        self.skip_ws()
        if self.peek() != "=":
            raise _ScanError
        self.advance()
        self.skip_ws()
        pointer = pointer_from_parts(parts)
        if pointer in self.key_positions:
            self.duplicate(parts, keys[-1][1])
        self.key_positions[pointer] = keys[-1][1]
        self.value(parts)

    def key(self) -> list[tuple[str, Span]]:
        parts: list[tuple[str, Span]] = []
        while True:
            self.skip_ws()
            span = self.span()
            c = self.peek()
            if c in ('"', "'"):
                parts.append((self.string_literal(), span))
            else:
                start = self.i
                while self.i < len(self.text) and self.text[self.i] in _BARE:
                    self.advance()
                if self.i == start:
                    raise _ScanError
                parts.append((self.text[start:self.i], span))
            self.skip_ws()
            if self.peek() == ".":
                self.advance()
                continue
            return parts

    def value(self, parts: tuple) -> None:
        self.positions[pointer_from_parts(parts)] = self.span()
        c = self.peek()
        if self.peek(3) in ('"""', "'''"):
            quote = self.peek(3)
            self.advance(3)
            while self.peek(3) != quote:
                if self.i >= len(self.text):
                    raise _ScanError
                if self.peek() == "\\" and quote == '"""':
                    self.advance()
                self.advance()
            self.advance(3)
            while self.peek() == quote[0]:
                self.advance()
        elif c in ('"', "'"):
            self.string_literal()
        elif c == "{":
            self.advance()
            while True:
                self.skip_ws()
                if self.i >= len(self.text):
                    raise _ScanError  # unterminated inline table
                if self.peek() == "}":
                    self.advance()
                    return
                self.key_value(parts)
                self.skip_ws()
                if self.peek() == ",":
                    self.advance()
        elif c == "[":
            self.advance()
            index = 0
            while True:
                self.skip_ws(newlines=True)
                if self.i >= len(self.text):
                    raise _ScanError  # unterminated array
                if self.peek() == "]":
                    self.advance()
                    return
                before = self.i
                self.value(parts + (index,))
                if self.i == before:
                    raise _ScanError  # a character no value starts with: no progress
                index += 1
                self.skip_ws(newlines=True)
                if self.peek() == ",":
                    self.advance()
        else:
            while self.i < len(self.text) and self.text[self.i] not in ",]}\n#":
                self.advance()

    def string_literal(self) -> str:
        quote = self.peek()
        self.advance()
        start = self.i
        while self.peek() != quote:
            if self.peek() == "\\" and quote == '"':
                self.advance()
            if self.peek() in ("", "\n"):
                raise _ScanError
            self.advance()
        raw = self.text[start:self.i]
        self.advance()
        if quote == '"' and "\\" in raw:
            try:
                return tomli.loads(f'k = "{raw}"')["k"]
            except tomli.TOMLDecodeError:
                return raw
        return raw

    def duplicate(self, parts: tuple, span: Span) -> None:
        pointer = pointer_from_parts(parts)
        first = self.key_positions.get(pointer)
        where = f" (first defined at {first})" if first else ""
        self.duplicates.append(Diagnostic("toml.duplicate-key", f"duplicate key {'.'.join(map(str, parts))!r}{where}",
                                          span, pointer, "remove one of them"))
