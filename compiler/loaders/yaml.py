"""Load stage for YAML: libyaml's events straight to data and positions, read by the YAML 1.2 core schema.

PyYAML silently keeps the last of two duplicate keys, expands an alias bomb and
types plain scalars by YAML 1.1 (`no` is false, `014` is 12). We read the event
stream ourselves instead, so every value gets a `file:line:col`, every hazard a
clear error, and every plain scalar its YAML 1.2 core meaning. No node graph is
built for the document (only for anchored subtrees, which aliases replay): the
graph cost more to build and to garbage-collect than the parse itself.
"""

from __future__ import annotations

import hashlib
import math
import re
from functools import partial
from typing import Any, Callable

import yaml
from yaml.composer import ComposerError
from yaml.constructor import SafeConstructor
from yaml.events import (AliasEvent, DocumentStartEvent, MappingEndEvent, MappingStartEvent, ScalarEvent,
                         SequenceEndEvent, SequenceStartEvent)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from compiler.diagnostics import Diagnostic, Document, Span, pointer_join
from compiler.loaders.text import check_items, decode_text, offset_span

#: Largest document accepted, in bytes.
MAX_BYTES = 16 * 1024 * 1024
#: Most lines plus commas accepted: a bound on the number of values, so parse time stays bounded.
#: Sized for the documented scale (a 10,000-entry manifest is about 80,000 lines) with room to spare;
#: the largest accepted file parses in a few seconds here, anything larger is refused at once.
MAX_ITEMS = 200_000
#: Deepest nesting accepted.
MAX_DEPTH = 64
#: Extra nodes that alias expansion may add beyond the document's own nodes.
MAX_ALIAS_EXPANSION = 100_000

_CORE = "tag:yaml.org,2002:"
_STR, _SEQ, _MAP, _MERGE, _TIMESTAMP = (f"{_CORE}{t}" for t in ("str", "seq", "map", "merge", "timestamp"))
_NULL, _BOOL, _INT, _FLOAT = (f"{_CORE}{t}" for t in ("null", "bool", "int", "float"))
_SCALAR_TAGS = {_STR, _NULL, _BOOL, _INT, _FLOAT, _TIMESTAMP}
#: ints wider than this cannot be written as JSON text (Python's 4300-digit str() limit)
_MAX_INT_BITS = 14_000
#: Span(...) without NamedTuple's Python-level __new__: a span per value is the loader's commonest allocation
_new_span = tuple.__new__

try:
    from yaml.cyaml import CParser as _EventParser
except ImportError:  # pragma: no cover - libyaml ships in PyYAML's wheels
    class _EventParser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):  # type: ignore[no-redef]
        def __init__(self, stream) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)


# ---------------------------------------------------------------------------------------------- YAML 1.2 core schema
# https://yaml.org/spec/1.2.2/#1032-tag-resolution: the only implicit types of a plain scalar.
_NULLS = {"", "~", "null", "Null", "NULL"}
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT10 = re.compile(r"[-+]?[0-9]+")
_INT8 = re.compile(r"0o[0-7]+")
_INT16 = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT_RE = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INF_NAN = re.compile(r"[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)")
#: a plain scalar can only be a number if it starts with one of these
_NUMERIC_START = frozenset("0123456789+-.")


def resolve_plain(text: str) -> str:
    """The YAML 1.2 core tag of an untagged plain scalar (`<<` stays the merge key we refuse)."""
    if text in _NULLS:
        return _NULL
    if text in _BOOLS:
        return _BOOL
    if text[0] in _NUMERIC_START:
        if _INT10.fullmatch(text) or _INT8.fullmatch(text) or _INT16.fullmatch(text):
            return _INT
        if _FLOAT_RE.fullmatch(text) or _INF_NAN.fullmatch(text):
            return _FLOAT
    if text == "<<":
        return _MERGE
    return _STR


class ScalarRefused(ValueError):
    """The text is not a valid YAML 1.2 core value of its tag, or not one Oneiric can represent."""

    def __init__(self, rule: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.rule, self.message, self.hint = rule, message, hint


def construct(tag: str, text: str) -> Any:
    """The value of a core-schema scalar (tag already resolved or explicit); raises ScalarRefused."""
    if tag == _STR or tag == _TIMESTAMP:
        return text  # dates stay the string the author wrote
    if tag == _NULL:
        return None
    if tag == _BOOL:
        if text in _BOOLS:
            return _BOOLS[text]
        raise ScalarRefused("yaml.scalar", f"invalid scalar: {text!r} is not a YAML 1.2 boolean",
                            "write true or false")
    if tag == _INT:
        if _INT10.fullmatch(text):
            try:
                return int(text)
            except ValueError:  # over sys.get_int_max_str_digits() (4300 digits)
                raise ScalarRefused("yaml.scalar", f"integer of {len(text)} digits is too large") from None
        if _INT8.fullmatch(text) or _INT16.fullmatch(text):
            value = int(text[2:], 8 if text[1] == "o" else 16)
            if value.bit_length() > _MAX_INT_BITS:  # no digit limit applies to these bases
                raise ScalarRefused("yaml.scalar", f"integer of {len(text)} digits is too large")
            return value
        raise ScalarRefused("yaml.scalar", f"invalid scalar: {text!r} is not a YAML 1.2 integer")
    if tag == _FLOAT:
        if _FLOAT_RE.fullmatch(text):
            value = float(text)
            if math.isfinite(value):
                return value
        elif not _INF_NAN.fullmatch(text):
            raise ScalarRefused("yaml.scalar", f"invalid scalar: {text!r} is not a YAML 1.2 float")
        raise ScalarRefused("yaml.nan", "NaN and infinity are not allowed")
    raise AssertionError(tag)  # pragma: no cover - callers check _SCALAR_TAGS


# ---------------------------------------------------------------------------------------------- YAML 1.1 readings
_RESOLVER_11 = yaml.resolver.Resolver()
_CONSTRUCTOR_11 = SafeConstructor()


def yaml11_reading(text: str, value: Any) -> str | None:
    """How YAML 1.1 (PyYAML's resolver) read this plain scalar, if that differs from `value`, its YAML 1.2
    reading: a sentence for the hint of a validation error at that value, else None."""
    tag = _RESOLVER_11.resolve(ScalarNode, text, (True, False))
    kind = tag[len(_CORE):]
    if kind not in ("bool", "int", "float", "null"):
        old: Any = text
    else:
        try:
            old = getattr(_CONSTRUCTOR_11, f"construct_yaml_{kind}")(ScalarNode(tag, text))
        except Exception:  # noqa: BLE001 - PyYAML's own spellings it cannot build: no reading to report
            return None
    if type(old) is type(value) and old == value:
        return None
    if isinstance(old, float) and not math.isfinite(old):
        return None
    if isinstance(old, int) and old.bit_length() > _MAX_INT_BITS:  # `0x_fff...`: too long to print in a hint
        return None
    return (f"YAML 1.2 reads {text} as {_describe(value)}, YAML 1.1 read it as {_describe(old)}; "
            f"to mean {_describe(old)}, write {_spell(old)}")


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, bool) or value is None:
        return _spell(value)
    return f"the {'integer' if isinstance(value, int) else 'number'} {value!r}"


def _spell(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


#: plain scalar text -> (YAML 1.2 tag, YAML 1.1 reading or None, value or _UNBUILT); config repeats the same
#: values thousands of times, and resolving or constructing each costs a regex scan. Values are immutable
#: (str, int, float, bool, None); one the core schema refuses stays _UNBUILT, so it is refused, with its
#: position, each time it occurs.
_PLAIN_CACHE: dict[str, tuple[str, str | None, Any]] = {}
_PLAIN_CACHE_SIZE = 50_000
_UNBUILT = object()
#: first characters PyYAML's YAML 1.1 resolver types a plain scalar by; any other one is a string in 1.1 too
_YAML11_STARTS = frozenset(_RESOLVER_11.yaml_implicit_resolvers)


def _classify(text: str) -> tuple[str, str | None, Any]:
    tag = resolve_plain(text)
    reading, value = None, _UNBUILT
    if tag is _STR and text and text[0] not in _YAML11_STARTS and None not in _YAML11_STARTS:
        value = text  # a string in both readings (yaml11_reading's answer, without building a node)
    elif tag in _SCALAR_TAGS:
        try:
            value = construct(tag, text)
        except ScalarRefused:
            pass
        else:
            reading = yaml11_reading(text, value)
    if len(_PLAIN_CACHE) >= _PLAIN_CACHE_SIZE:
        _PLAIN_CACHE.clear()
    _PLAIN_CACHE[text] = classified = (tag, reading, value)
    return classified


# ---------------------------------------------------------------------------------------------- events to data
class _Abort(Exception):
    def __init__(self, diagnostic: Diagnostic) -> None:
        self.diagnostic = diagnostic


class _Full(Exception):
    """A shallow pass met a diagnostic: read the document again recording every position."""


#: pointers of at most this many tokens get their positions in the first pass (`/entries/<i>`: every manifest
#: entry's `source`); the rest are made when first asked for (compiler.diagnostics.Document)
SHALLOW_DEPTH = 2


class _Loader:
    """Builds one document's data and positions from the event stream.

    Semantics are those of composing the whole stream into nodes and then walking the first document:
    a syntax error anywhere wins, then the document count, then the first fatal hazard (alias bomb,
    nesting, recursive alias), then every other diagnostic. Anchored subtrees are composed into nodes
    (aliases replay them, costing the alias budget one unit per node); the rest never is.
    """

    def __init__(self, text: str, path: str, record_depth: int = MAX_DEPTH + 1) -> None:
        self.path = path
        #: positions are recorded for pointers of at most this many tokens; a pass that records fewer
        #: (`shallow`) stops at the first diagnostic (_Full): the full pass reports it with every span
        self.record_depth = record_depth
        self.shallow = record_depth <= MAX_DEPTH
        self.get: Callable[[], Any] = _EventParser(text).get_event
        self.positions: dict[str, Span] = {}
        self.key_positions: dict[str, Span] = {}
        self.readings: dict[str, str] = {}
        self.errors: list[Diagnostic] = []
        self.anchors: dict[str, Any] = {}
        self.open = 0  # collections of the event path entered and not yet left
        self.budget = MAX_ALIAS_EXPANSION  # visits of nodes already seen, i.e. alias expansion
        self.seen: set[int] = set()
        self.stack: set[int] = set()
        self.implicit: set[int] = set()  # composed scalars whose tag came from their plain text
        # libyaml puts an empty value that ends the stream one line past the last one ("? a" without a
        # newline); such marks are clamped to the last line so every position lies inside the file
        self.last_line = (text.count("\n") + text.count("\r") - text.count("\r\n") + text.count("\x85")
                          + text.count("\u2028") + text.count("\u2029"))

    def run(self) -> tuple[int, Span | None, Any, Diagnostic | None]:
        """(documents, where the second starts, the first one's data, the fatal hazard or None)."""
        get = self.get
        get()  # StreamStartEvent
        documents, second, data, abort = 0, None, None, None
        event = get()
        while type(event) is DocumentStartEvent:
            self.anchors = {}
            event = get()
            documents += 1
            if documents == 1:
                try:
                    data = self.value(event, "", 0)
                except _Abort as stop:
                    abort = stop.diagnostic
                    self.skip_open(self.open)
            else:
                if documents == 2:
                    second = Span(self.path, event.start_mark.line + 1, 1)
                self.skip(event)
            get()  # DocumentEndEvent
            event = get()
        return documents, second, data, abort

    # -- the event path: nodes nobody can alias -------------------------------------------------------
    def value(self, event: Any, pointer: str, depth: int) -> Any:
        kind = type(event)
        if kind is AliasEvent:
            return self.walk(self.alias(event), pointer, depth)
        if event.anchor is not None:
            return self.walk(self.compose(event), pointer, depth)
        mark = event.start_mark
        line = mark.line
        span = _new_span(Span, (self.path, (line if line < self.last_line else self.last_line) + 1, mark.column + 1))
        if depth > MAX_DEPTH:
            if kind is not ScalarEvent:
                self.open += 1  # its contents are still to be read past
            raise _Abort(Diagnostic("yaml.too-deep", f"nesting deeper than {MAX_DEPTH} levels", span, pointer))
        if depth <= self.record_depth:
            self.positions[pointer] = span
        if kind is ScalarEvent:
            return self.scalar_value(event, span, pointer)
        if kind is SequenceStartEvent:
            return self.sequence(event, span, pointer, depth)
        return self.mapping(event, span, pointer, depth)

    def scalar_value(self, event: Any, span: Span | None, pointer: str) -> Any:
        """An unanchored scalar's value (its position is already recorded; span is None only in a shallow pass,
        which reports nothing)."""
        tag = event.tag
        if tag is None or tag == "!":
            text = event.value
            if not event.implicit[0]:
                return text
            tag, reading, value = _PLAIN_CACHE.get(text) or _classify(text)
            if reading is not None:
                self.readings[pointer] = reading
            if tag is _STR or tag is _MERGE:  # `<<` is refused as a key only
                return text
            if value is not _UNBUILT:
                return value
        return self.scalar(tag, event.value, span, pointer)

    # The two loops below read an unanchored scalar child in place (the commonest event by far) instead of
    # through value(): the same span, position and value, without a call per scalar.

    def sequence(self, event: Any, span: Span, pointer: str, depth: int) -> list[Any]:
        if event.tag is not None and event.tag != "!" and event.tag != _SEQ:
            self.fail("yaml.tag", f"tag {_short(event.tag)!r} is not allowed (core schema only)", span, pointer)
        get, path, positions, last_line, scalar_value = (self.get, self.path, self.positions, self.last_line,
                                                         self.scalar_value)
        inline = depth < MAX_DEPTH  # a child at depth + 1 is within the limit
        record = depth < self.record_depth  # a child's position is recorded
        self.open += 1
        out: list[Any] = []
        append = out.append
        span = None
        event = get()
        while type(event) is not SequenceEndEvent:
            child = f"{pointer}/{len(out)}"
            if inline and type(event) is ScalarEvent and event.anchor is None:
                if record:
                    mark = event.start_mark
                    line = mark.line
                    positions[child] = span = _new_span(
                        Span, (path, (line if line < last_line else last_line) + 1, mark.column + 1))
                append(scalar_value(event, span, child))
            else:
                append(self.value(event, child, depth + 1))
            event = get()
        self.open -= 1
        return out

    def mapping(self, event: Any, span: Span, pointer: str, depth: int) -> dict[str, Any]:
        if event.tag is not None and event.tag != "!" and event.tag != _MAP:
            self.fail("yaml.tag", f"tag {_short(event.tag)!r} is not allowed (core schema only)", span, pointer)
        get, path, positions, key_positions, last_line, scalar_value = (
            self.get, self.path, self.positions, self.key_positions, self.last_line, self.scalar_value)
        inline = depth < MAX_DEPTH
        record = depth < self.record_depth  # a child's position and its key's are recorded
        self.open += 1
        mapping: dict[str, Any] = {}  # a key already in it is a duplicate (key_positions holds its first span)
        cache_get = _PLAIN_CACHE.get
        span = None
        event = get()
        while type(event) is not MappingEndEvent:
            if type(event) is ScalarEvent and event.anchor is None:
                tag = event.tag
                key = event.value
                if tag is None or tag == "!":
                    tag = (cache_get(key) or _classify(key))[0] if event.implicit[0] else _STR
                is_scalar, key_mark = True, event.start_mark
            else:
                node = self.alias(event) if type(event) is AliasEvent else self.compose(event)
                tag, is_scalar, key, key_mark = node.tag, type(node) is ScalarNode, node.value, node.start_mark
            if tag == _STR and is_scalar:
                child = pointer_join(pointer, key) if "~" in key or "/" in key else f"{pointer}/{key}"
                if key not in mapping:
                    if record:
                        key_positions[child] = _new_span(Span, (path, key_mark.line + 1, key_mark.column + 1))
                    event = get()
                    if inline and type(event) is ScalarEvent and event.anchor is None:
                        if record:
                            mark = event.start_mark
                            line = mark.line
                            positions[child] = span = _new_span(
                                Span, (path, (line if line < last_line else last_line) + 1, mark.column + 1))
                        if event.tag is None and event.implicit[0]:  # plain: scalar_value's commonest case
                            text = event.value
                            tag, reading, value = cache_get(text) or _classify(text)
                            if reading is not None:
                                self.readings[child] = reading
                            mapping[key] = (text if tag is _STR or tag is _MERGE else
                                            value if value is not _UNBUILT else self.scalar(tag, text, span, child))
                        else:
                            mapping[key] = scalar_value(event, span, child)
                    else:
                        mapping[key] = self.value(event, child, depth + 1)
                    event = get()
                    continue
            if self.shallow:
                raise _Full
            key_span = _new_span(Span, (path, key_mark.line + 1, key_mark.column + 1))
            if tag == _STR and is_scalar:
                self.fail("yaml.duplicate-key", f"duplicate key {key!r} (first defined at {key_positions[child]})",
                          key_span, child, "remove one of them; YAML parsers differ on which wins")
            elif tag == _MERGE:
                self.fail("yaml.merge-key", "merge keys (<<) are not supported", key_span, pointer,
                          "repeat the keys or use an anchor for the whole value")
            else:
                self.fail("yaml.key-type", "mapping keys must be strings", key_span, pointer, "quote the key")
            self.skip(get())  # the value of a refused key is composed (its anchors count), not read
            event = get()
        self.open -= 1
        return mapping

    def scalar(self, tag: str, text: str, span: Span, pointer: str) -> Any:
        if tag not in _SCALAR_TAGS:
            self.fail("yaml.tag", f"tag {_short(tag)!r} is not allowed (core schema only)", span, pointer,
                      "remove the tag; only plain scalars, sequences and mappings are accepted")
            return None
        try:
            return construct(tag, text)
        except ScalarRefused as refused:
            self.fail(refused.rule, refused.message, span, pointer, refused.hint)
            return None

    def fail(self, rule: str, message: str, span: Span, pointer: str, hint: str | None = None) -> None:
        if self.shallow:
            raise _Full
        self.errors.append(Diagnostic(rule, message, span, pointer, hint))

    # -- anchors and aliases: composed nodes, walked like a node graph ---------------------------------
    def alias(self, event: Any) -> Any:
        node = self.anchors.get(event.anchor)
        if node is None:
            raise ComposerError(None, None, "found undefined alias", event.start_mark)
        return node

    def anchor(self, event: Any, node: Any) -> None:
        name = event.anchor
        if name is not None:
            if name in self.anchors:
                raise ComposerError("found duplicate anchor; first occurrence", self.anchors[name].start_mark,
                                    "second occurrence", event.start_mark)
            self.anchors[name] = node

    def compose(self, event: Any) -> Node:
        """The node graph of one value (iteratively: no recursion limit to hit), as PyYAML composes it."""
        get = self.get
        stack: list[Any] = []
        keys: list[Any] = []  # per open mapping: its pending key node, or None
        while True:
            kind = type(event)
            if kind is AliasEvent:
                node = self.alias(event)
            elif kind is ScalarEvent:
                tag = event.tag
                plain = tag is None or tag == "!"
                if plain:
                    tag = (_PLAIN_CACHE.get(event.value) or _classify(event.value))[0] if event.implicit[0] else _STR
                node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
                if plain and event.implicit[0]:
                    self.implicit.add(id(node))
                self.anchor(event, node)
            elif kind is SequenceStartEvent or kind is MappingStartEvent:
                tag = event.tag
                if kind is SequenceStartEvent:
                    node = SequenceNode(_SEQ if tag is None or tag == "!" else tag, [], event.start_mark, None,
                                        event.flow_style)
                else:
                    node = MappingNode(_MAP if tag is None or tag == "!" else tag, [], event.start_mark, None,
                                       event.flow_style)
                self.anchor(event, node)
                stack.append(node)
                keys.append(None)
                event = get()
                continue
            else:  # the end of the innermost open collection
                node = stack.pop()
                keys.pop()
            if not stack:
                return node
            parent = stack[-1]
            if type(parent) is SequenceNode:
                parent.value.append(node)
            elif keys[-1] is None:
                keys[-1] = node
            else:
                parent.value.append((keys[-1], node))
                keys[-1] = None
            event = get()

    def skip(self, event: Any) -> None:
        self.compose(event)

    def skip_open(self, levels: int) -> None:
        """Read to the end of the `levels` collections left open by a fatal hazard, still checking anchors."""
        get = self.get
        while levels:
            event = get()
            kind = type(event)
            if kind is AliasEvent:
                self.alias(event)
            elif kind is ScalarEvent:
                self.anchor(event, event)
            elif kind is SequenceStartEvent or kind is MappingStartEvent:
                self.anchor(event, event)
                levels += 1
            else:
                levels -= 1

    def span(self, node: Node) -> Span:
        mark = node.start_mark
        return _new_span(Span, (self.path, min(mark.line, self.last_line) + 1, mark.column + 1))

    def walk(self, node: Node, pointer: str, depth: int) -> Any:
        if id(node) in self.seen:
            self.budget -= 1
        else:
            self.seen.add(id(node))
        if self.budget < 0:
            raise _Abort(Diagnostic("yaml.alias-bomb", "alias expansion exceeds the limit "
                                    f"of {MAX_ALIAS_EXPANSION} nodes (an alias bomb?)", self.span(node), pointer,
                                    "avoid nesting anchors inside anchors"))
        if depth > MAX_DEPTH:
            raise _Abort(Diagnostic("yaml.too-deep", f"nesting deeper than {MAX_DEPTH} levels",
                                    self.span(node), pointer))
        if depth <= self.record_depth and pointer not in self.positions:
            self.positions[pointer] = self.span(node)
        if id(node) in self.stack:
            raise _Abort(Diagnostic("yaml.recursive", "recursive alias", self.span(node), pointer))
        if isinstance(node, ScalarNode):
            if id(node) in self.implicit:
                reading = (_PLAIN_CACHE.get(node.value) or _classify(node.value))[1]
                if reading is not None:
                    self.readings[pointer] = reading
                if node.tag == _MERGE:
                    return node.value
            if node.tag == _STR:  # the commonest case, and alias expansion repeats it up to the budget
                return node.value
            return self.scalar(node.tag, node.value, self.span(node), pointer)
        self.stack.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                if node.tag != _SEQ:
                    self.fail("yaml.tag", f"tag {_short(node.tag)!r} is not allowed (core schema only)",
                              self.span(node), pointer)
                return [self.walk(item, pointer_join(pointer, i), depth + 1) for i, item in enumerate(node.value)]
            return self.walk_mapping(node, pointer, depth)
        finally:
            self.stack.discard(id(node))

    def walk_mapping(self, node: MappingNode, pointer: str, depth: int) -> dict[str, Any]:
        if node.tag != _MAP:
            self.fail("yaml.tag", f"tag {_short(node.tag)!r} is not allowed (core schema only)", self.span(node),
                      pointer)
        out: dict[str, Any] = {}
        first_seen: dict[str, Span] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                self.fail("yaml.merge-key", "merge keys (<<) are not supported", self.span(key_node), pointer,
                          "repeat the keys or use an anchor for the whole value")
                continue
            if key_node.tag != _STR or not isinstance(key_node, ScalarNode):
                self.fail("yaml.key-type", "mapping keys must be strings", self.span(key_node), pointer,
                          "quote the key")
                continue
            key = key_node.value
            child = pointer_join(pointer, key)
            if key in first_seen:
                self.fail("yaml.duplicate-key", f"duplicate key {key!r} (first defined at {first_seen[key]})",
                          self.span(key_node), child, "remove one of them; YAML parsers differ on which wins")
                continue
            first_seen[key] = key_span = self.span(key_node)
            if depth < self.record_depth:
                self.key_positions[child] = key_span
            out[key] = self.walk(value_node, child, depth + 1)
        return out


def load_yaml(raw: bytes, path: str) -> Document | list[Diagnostic]:
    """Parse one YAML document; return it with positions, or every diagnostic found."""
    if len(raw) > MAX_BYTES:
        return [Diagnostic("yaml.too-large", f"file is {len(raw)} bytes; the limit is {MAX_BYTES}",
                           Span(path, 1, 1))]
    too_many = check_items(raw, path, MAX_ITEMS, "yaml.too-large")
    if too_many is not None:
        return [too_many]
    text = decode_text(raw, path)
    if isinstance(text, Diagnostic):
        return [text]
    loader = _Loader(text, path, SHALLOW_DEPTH)
    try:
        try:
            documents, second, data, abort = loader.run()
        except _Full:  # a diagnostic to report: the full pass finds it (and every other) with its spans
            loader = _Loader(text, path)
            documents, second, data, abort = loader.run()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        span = Span(path, mark.line + 1, mark.column + 1) if mark else Span(path, 1, 1)
        message = " ".join(p for p in (exc.context, exc.problem) if p)
        return [Diagnostic("yaml.syntax", message or "invalid YAML", span)]
    except yaml.reader.ReaderError as exc:  # a control character; libyaml gives its offset in the UTF-8 bytes
        body = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw
        return [Diagnostic("yaml.syntax", f"control character {chr(exc.character)!r} is not allowed",
                           offset_span(body, exc.position, path),
                           hint="remove it or write it as an escape inside a double-quoted string")]
    except yaml.YAMLError as exc:
        return [Diagnostic("yaml.syntax", str(exc), Span(path, 1, 1))]
    except RecursionError:
        return [Diagnostic("yaml.too-deep", f"nesting deeper than {MAX_DEPTH} levels", Span(path, 1, 1))]
    if documents != 1:
        return [Diagnostic("yaml.documents", f"expected one YAML document, found {documents}",
                           second or Span(path, 1, 1))]
    if abort is not None:
        return [abort]
    if loader.errors:
        return loader.errors
    complete = partial(_all_positions, text, path) if loader.shallow else None
    return Document(path, data, hashlib.sha256(raw).hexdigest(), loader.positions, loader.key_positions,
                    loader.readings, complete=complete, complete_depth=loader.record_depth)


def _all_positions(text: str, path: str) -> tuple[dict[str, Span], dict[str, Span]]:
    """Every position of a document a shallow pass read without a diagnostic (so this pass finds none)."""
    loader = _Loader(text, path)
    loader.run()
    return loader.positions, loader.key_positions


def _short(tag: str) -> str:
    return "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag
