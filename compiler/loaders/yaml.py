"""Load stage for YAML: PyYAML's safe composer, plus positions, duplicate-key, tag and bomb checks.

PyYAML silently keeps the last of two duplicate keys and happily expands an
alias bomb; we walk the composed node graph ourselves instead, so every value
gets a `file:line:col` and every hazard a clear error.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from compiler.diagnostics import Diagnostic, Document, Span, pointer_join
from compiler.loaders.text import check_items, decode_text

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
_SCALAR_TAGS = {f"{_CORE}{t}" for t in ("str", "int", "float", "bool", "null", "timestamp")}


class _CachingResolver(yaml.resolver.Resolver):
    """PyYAML's implicit-tag resolver, memoised for plain scalars: config repeats the same keys and
    values thousands of times, and resolving each one costs a regex scan (a third of compose time)."""

    def __init__(self) -> None:
        super().__init__()
        self._plain: dict[str, str] = {}

    def resolve(self, kind, value, implicit):  # type: ignore[override]
        if kind is ScalarNode and implicit[0]:
            tag = self._plain.get(value)
            if tag is None:
                tag = super().resolve(kind, value, implicit)
                if len(self._plain) < 50_000:
                    self._plain[value] = tag
            return tag
        return super().resolve(kind, value, implicit)


try:
    from yaml.cyaml import CParser as _CParser

    _PARSER_BASES: tuple = (_CParser,)
except ImportError:  # pragma: no cover - libyaml ships in PyYAML's wheels
    _CParser = None
    _PARSER_BASES = (yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer)


class _Loader(*_PARSER_BASES, SafeConstructor, _CachingResolver):  # type: ignore[misc]
    """CSafeLoader (libyaml) with the caching resolver; PyYAML's pure-Python parts without libyaml."""

    def __init__(self, stream) -> None:
        if _CParser is not None:
            _CParser.__init__(self, stream)
        else:  # pragma: no cover
            for base in _PARSER_BASES:
                base.__init__(self, *((stream,) if base is yaml.reader.Reader else ()))
        SafeConstructor.__init__(self)
        _CachingResolver.__init__(self)
_PLAIN_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)\Z")
#: ints wider than this cannot be written as JSON text (Python's 4300-digit str() limit)
_MAX_INT_BITS = 14_000
_BOOLS = {"yes": True, "true": True, "on": True, "no": False, "false": False, "off": False}


class _Walker:
    def __init__(self, path: str) -> None:
        self.path = path
        self.constructor = SafeConstructor()
        self.positions: dict[str, Span] = {}
        self.key_positions: dict[str, Span] = {}
        self.errors: list[Diagnostic] = []
        self.budget = MAX_ALIAS_EXPANSION  # visits of nodes already seen, i.e. alias expansion
        self.seen: set[int] = set()
        self.stack: set[int] = set()

    def span(self, node: Node) -> Span:
        return Span(self.path, node.start_mark.line + 1, node.start_mark.column + 1)

    def fail(self, rule: str, message: str, node: Node, pointer: str, hint: str | None = None) -> None:
        self.errors.append(Diagnostic(rule, message, self.span(node), pointer, hint))

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
        if pointer not in self.positions:
            self.positions[pointer] = Span(self.path, node.start_mark.line + 1, node.start_mark.column + 1)
        if id(node) in self.stack:
            raise _Abort(Diagnostic("yaml.recursive", "recursive alias", self.span(node), pointer))
        if isinstance(node, ScalarNode):
            return self.scalar(node, pointer)
        self.stack.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                if node.tag != _SEQ:
                    self.fail("yaml.tag", f"tag {_short(node.tag)!r} is not allowed (core schema only)", node, pointer)
                return [self.walk(item, pointer_join(pointer, i), depth + 1) for i, item in enumerate(node.value)]
            if isinstance(node, MappingNode):
                return self.mapping(node, pointer, depth)
        finally:
            self.stack.discard(id(node))
        raise _Abort(Diagnostic("yaml.node", "unsupported YAML node", self.span(node), pointer))

    def mapping(self, node: MappingNode, pointer: str, depth: int) -> dict[str, Any]:
        if node.tag != _MAP:
            self.fail("yaml.tag", f"tag {_short(node.tag)!r} is not allowed (core schema only)", node, pointer)
        out: dict[str, Any] = {}
        first_seen: dict[str, Span] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                self.fail("yaml.merge-key", "merge keys (<<) are not supported", key_node, pointer,
                          "repeat the keys or use an anchor for the whole value")
                continue
            if key_node.tag != _STR or not isinstance(key_node, ScalarNode):
                self.fail("yaml.key-type", "mapping keys must be strings", key_node, pointer,
                          "quote the key")
                continue
            key = key_node.value
            child = pointer_join(pointer, key)
            if key in first_seen:
                self.fail("yaml.duplicate-key", f"duplicate key {key!r} (first defined at {first_seen[key]})",
                          key_node, child, "remove one of them; YAML parsers differ on which wins")
                continue
            first_seen[key] = self.key_positions[child] = self.span(key_node)
            out[key] = self.walk(value_node, child, depth + 1)
        return out

    def scalar(self, node: ScalarNode, pointer: str) -> Any:
        if node.tag not in _SCALAR_TAGS:
            self.fail("yaml.tag", f"tag {_short(node.tag)!r} is not allowed (core schema only)", node, pointer,
                      "remove the tag; only plain scalars, sequences and mappings are accepted")
            return None
        if node.tag == _STR or node.tag == _TIMESTAMP:
            return node.value  # dates stay the string the author wrote
        kind = node.tag[len(_CORE):]
        text = node.value
        if kind == "null":
            return None
        if kind == "bool" and text.lower() in _BOOLS:
            return _BOOLS[text.lower()]
        if kind == "int" and _PLAIN_INT.match(text):
            try:
                return int(text)
            except ValueError:  # over sys.get_int_max_str_digits() (4300 digits)
                self.fail("yaml.scalar", f"integer of {len(text)} digits is too large", node, pointer)
                return None
        try:  # the rarer spellings (0x, 0o, 1_000, sexagesimal, .inf) through PyYAML itself
            value = getattr(self.constructor, f"construct_yaml_{kind}")(node)
        except (ConstructorError, ValueError) as exc:
            self.fail("yaml.scalar", f"invalid scalar: {exc}", node, pointer)
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self.fail("yaml.nan", "NaN and infinity are not allowed", node, pointer)
            return None
        if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:  # 0x/0o/0b: no digit limit applies
            self.fail("yaml.scalar", f"integer of {len(text)} digits is too large", node, pointer)
            return None
        return value


class _Abort(Exception):
    def __init__(self, diagnostic: Diagnostic) -> None:
        self.diagnostic = diagnostic


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
    try:
        nodes = list(yaml.compose_all(text, Loader=_Loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        span = Span(path, mark.line + 1, mark.column + 1) if mark else Span(path, 1, 1)
        message = " ".join(p for p in (exc.context, exc.problem) if p)
        return [Diagnostic("yaml.syntax", message or "invalid YAML", span)]
    except yaml.reader.ReaderError as exc:  # a control character: locate it (PyYAML gives an offset only)
        before = text[:exc.position]
        span = Span(path, before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1)
        return [Diagnostic("yaml.syntax", f"control character {chr(exc.character)!r} is not allowed", span,
                           hint="remove it or write it as an escape inside a double-quoted string")]
    except yaml.YAMLError as exc:
        return [Diagnostic("yaml.syntax", str(exc), Span(path, 1, 1))]
    except RecursionError:
        return [Diagnostic("yaml.too-deep", f"nesting deeper than {MAX_DEPTH} levels", Span(path, 1, 1))]
    if len(nodes) != 1:
        where = Span(path, nodes[1].start_mark.line + 1, 1) if len(nodes) > 1 else Span(path, 1, 1)
        return [Diagnostic("yaml.documents", f"expected one YAML document, found {len(nodes)}", where)]
    walker = _Walker(path)
    try:
        data = walker.walk(nodes[0], "", 0)
    except _Abort as abort:
        return [abort.diagnostic]
    if walker.errors:
        return walker.errors
    return Document(path, data, hashlib.sha256(raw).hexdigest(), walker.positions, walker.key_positions)


def _short(tag: str) -> str:
    return "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag
