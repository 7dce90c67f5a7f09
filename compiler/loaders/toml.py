"""Load stage for TOML: tomlkit parses and rejects duplicates; a small position scanner maps keys to lines.

tomlkit keeps no line numbers for keys, so after it has accepted the text we
walk the same text once more with a minimal TOML scanner that only records
where each key and value starts (JSON pointer -> Span).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
from typing import Any

import tomlkit
from tomlkit.exceptions import KeyAlreadyPresent, ParseError, TOMLKitError

from compiler.diagnostics import Diagnostic, Document, Span, pointer_from_parts
from compiler.loaders.text import check_items, decode_text, offset_span

#: Largest file accepted, in bytes (tomlkit and the position scanner read about 1 MB/s).
MAX_BYTES = 512 * 1024
#: Most lines plus commas accepted (a bound on the number of values, so parsing stays under a second).
MAX_ITEMS = 10_000
#: Nesting depth named when tomlkit runs out of recursion (its own limit is 100 for some forms).
MAX_DEPTH = 100
#: ints wider than this cannot be written as JSON text (Python's 4300-digit str() limit)
_MAX_INT_BITS = 14_000
_BARE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def load_toml(raw: bytes, path: str) -> Document | list[Diagnostic]:
    """Parse one TOML file; return it with positions, or every diagnostic found."""
    if len(raw) > MAX_BYTES:
        return [Diagnostic("toml.too-large", f"file is {len(raw)} bytes; the limit is {MAX_BYTES}", Span(path, 1, 1))]
    too_many = check_items(raw, path, MAX_ITEMS, "toml.too-large")
    if too_many is not None:
        return [too_many]
    text = decode_text(raw, path)
    if isinstance(text, Diagnostic):
        return [text]
    scanner = _Scanner(text, path)
    try:
        scanner.scan()
    except (_ScanError, IndexError, RecursionError):
        pass  # tomlkit below names the syntax error precisely
    try:
        data = tomlkit.parse(text).unwrap()
    except RecursionError:
        return [_too_deep(raw, path)]
    except KeyAlreadyPresent as exc:
        if scanner.duplicates:
            return scanner.duplicates
        return [Diagnostic("toml.duplicate-key", str(exc), Span(path, 1, 1))]
    except ParseError as exc:
        if scanner.duplicates:
            return scanner.duplicates
        rule = "toml.duplicate-key" if "already exists" in str(exc) else "toml.syntax"
        message = str(exc).split(" at line ")[0]
        return [Diagnostic(rule, message, Span(path, exc.line, exc.col + 1 if exc.col is not None else 1))]
    except (TOMLKitError, ValueError) as exc:
        return [Diagnostic("toml.syntax", str(exc), Span(path, 1, 1))]
    if scanner.duplicates:
        return scanner.duplicates
    errors: list[Diagnostic] = []
    data = _plain(data, "", errors, scanner, path)
    if errors:
        return errors
    return Document(path, data, hashlib.sha256(raw).hexdigest(), scanner.positions, scanner.key_positions)


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
    """Normalise tomlkit values to JSON-compatible data (dates become ISO strings)."""
    if isinstance(value, dict):
        return {k: _plain(v, f"{pointer}/{k}", errors, scanner, path) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, f"{pointer}/{i}", errors, scanner, path) for i, v in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        errors.append(Diagnostic("toml.nan", "NaN and infinity are not allowed",
                                 scanner.positions.get(pointer, Span(path, 1, 1)), pointer))
        return None
    if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:  # 0x/0o/0b: no digit limit applies
        errors.append(Diagnostic("toml.too-large", "integer too large to be written as JSON",
                                 scanner.positions.get(pointer, Span(path, 1, 1)), pointer))
        return None
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    return value


class _ScanError(Exception):
    pass


class _Scanner:
    """Records the position of every key and value of text that tomlkit accepted."""

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.i = 0
        self.line = 1
        self.line_start = 0
        self.positions: dict[str, Span] = {}
        self.key_positions: dict[str, Span] = {}
        self.duplicates: list[Diagnostic] = []
        self._aot: dict[tuple, int] = {}
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
                parts = tuple(self.key())
                self.skip_ws()
                self.advance(2)
                index = self._aot.get(parts, 0)
                self._aot[parts] = index + 1
                current = parts + (index,)
                self.record(current, start, start)
            elif self.peek() == "[":
                self.advance()
                parts = tuple(self.key())
                self.skip_ws()
                self.advance()
                if parts in self._headers:
                    self.duplicate(parts, start)
                self._headers.add(parts)
                current = parts
                self.record(current, start, start)
            else:
                self.key_value(current)

    def key_value(self, prefix: tuple) -> None:
        key_span = self.span()
        parts = prefix + tuple(self.key())
        self.skip_ws()
        if self.peek() != "=":
            raise _ScanError
        self.advance()
        self.skip_ws()
        pointer = pointer_from_parts(parts)
        if pointer in self.key_positions:
            self.duplicate(parts, key_span)
        self.key_positions[pointer] = key_span
        self.value(parts)

    def key(self) -> list[str]:
        parts: list[str] = []
        while True:
            self.skip_ws()
            c = self.peek()
            if c in ('"', "'"):
                parts.append(self.string_literal())
            else:
                start = self.i
                while self.i < len(self.text) and self.text[self.i] in _BARE:
                    self.advance()
                if self.i == start:
                    raise _ScanError
                parts.append(self.text[start:self.i])
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
                    raise _ScanError  # unterminated array (looping here filled memory)
                if self.peek() == "]":
                    self.advance()
                    return
                before = self.i
                self.value(parts + (index,))
                if self.i == before:
                    raise _ScanError  # a character no value starts with (`[}]`): no progress
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
        if quote == '"':
            try:
                return tomlkit.parse(f'k = "{raw}"')["k"]
            except TOMLKitError:
                return raw
        return raw

    def record(self, parts: tuple, key_span: Span, value_span: Span) -> None:
        pointer = pointer_from_parts(parts)
        self.key_positions.setdefault(pointer, key_span)
        self.positions.setdefault(pointer, value_span)

    def duplicate(self, parts: tuple, span: Span) -> None:
        pointer = pointer_from_parts(parts)
        first = self.key_positions.get(pointer)
        where = f" (first defined at {first})" if first else ""
        self.duplicates.append(Diagnostic("toml.duplicate-key", f"duplicate key {'.'.join(map(str, parts))!r}{where}",
                                          span, pointer, "remove one of them"))
