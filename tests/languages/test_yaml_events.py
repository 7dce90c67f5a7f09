"""The event-based YAML loader keeps the composer's semantics: positions, aliases, hazards and their order."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from compiler.diagnostics import Document, Span, pointer_join
from compiler.loaders.yaml import MAX_ALIAS_EXPANSION, load_yaml, resolve_plain


class _Dumper(yaml.SafeDumper):
    """safe_dump quotes the strings YAML 1.1 would type; this also quotes those YAML 1.2 types (`1e3`, `0o14`)."""

    def represent_str(self, data: str):
        typed = data != "" and resolve_plain(data) != "tag:yaml.org,2002:str"
        return self.represent_scalar("tag:yaml.org,2002:str", data, style="'" if typed else None)


_Dumper.add_representer(str, _Dumper.represent_str)


def _rules(raw: bytes) -> list[tuple[str, tuple]]:
    result = load_yaml(raw, "m.yaml")
    assert isinstance(result, list), result
    return [(d.rule, tuple(d.span)[1:]) for d in result]


def test_aliases_replay_the_anchored_value_with_its_positions():
    doc = load_yaml(b"base: &b {x: 1, y: [2]}\ncopy: *b\n", "m.yaml")
    assert doc.data == {"base": {"x": 1, "y": [2]}, "copy": {"x": 1, "y": [2]}}
    assert doc.data["copy"] is not doc.data["base"]  # a fresh copy: later stages may edit one
    assert doc.span("/copy") == doc.span("/base") == Span("m.yaml", 1, 7)  # where the anchor starts
    assert doc.span("/copy/y/0") == Span("m.yaml", 1, 21)
    assert doc.span("/copy", key=True) == Span("m.yaml", 2, 1)


def test_hazards_keep_their_order_syntax_then_documents_then_fatal_then_the_rest():
    bomb = b"a: &a [x, x, x, x, x, x, x, x, x, x]\n" + b"".join(
        b"%s: &%s [%s]\n" % (bytes([n]), bytes([n]), b", ".join([b"*" + bytes([p])] * 10)) for p, n in zip(b"abcd", b"bcde"))
    assert _rules(bomb)[0][0] == "yaml.alias-bomb"
    assert [rule for rule, _ in _rules(b"k: 1\nk: 2\n" + bomb)] == ["yaml.alias-bomb"]  # not the duplicate key
    assert _rules(bomb + b"---\nz: 1\n") == [("yaml.documents", (7, 1))]
    assert _rules(bomb + b"z: [\n") == [("yaml.syntax", (7, 1))]
    assert _rules(b"a: " + b"[" * 70 + b"]" * 70 + b"\nb: *nope\n") == [("yaml.syntax", (2, 4))]
    assert _rules(b"a: " + b"[" * 70 + b"]" * 70 + b"\n") == [("yaml.too-deep", (1, 68))]
    assert _rules(b"a: &a [*a]\n") == [("yaml.recursive", (1, 4))]
    assert _rules(b"a: 1\n---\nb: *c\n") == [("yaml.syntax", (3, 4))]  # undefined alias in a later document
    assert _rules(b"a: &x 1\nb: &x 2\n") == [("yaml.syntax", (2, 4))]  # duplicate anchor
    assert _rules(b"") == [("yaml.documents", (1, 1))]


def test_the_alias_budget_counts_replayed_nodes():
    # 1 + 2 nodes per alias of `a`: n aliases cost 3n; the budget is MAX_ALIAS_EXPANSION
    n = MAX_ALIAS_EXPANSION // 3
    under = b"a: &a [1, 2]\nb: [" + b", ".join([b"*a"] * n) + b"]\n"
    assert isinstance(load_yaml(under, "m.yaml"), Document)
    over = b"a: &a [1, 2]\nb: [" + b", ".join([b"*a"] * (n + 1)) + b"]\n"
    assert _rules(over)[0][0] == "yaml.alias-bomb"


def test_a_control_character_is_located_after_multibyte_text():
    assert _rules("a: ééé\nb: x\x01y\n".encode()) == [("yaml.syntax", (2, 5))]


def _composed_positions(text: str) -> tuple[dict, dict]:
    """Pointer -> span from PyYAML's own composer (the independent oracle for positions)."""
    values, keys = {}, {}

    def walk(node, pointer):
        values[pointer] = Span("m.yaml", node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, pointer_join(pointer, i))
        elif isinstance(node, MappingNode):
            for key, value in node.value:
                keys[pointer_join(pointer, key.value)] = Span("m.yaml", key.start_mark.line + 1, key.start_mark.column + 1)
                walk(value, pointer_join(pointer, key.value))

    walk(yaml.compose(text, Loader=yaml.CSafeLoader), "")
    return values, keys


_keys = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=8)
_leaves = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=8).filter(str.isalnum))
_docs = st.dictionaries(_keys, st.recursive(_leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=3)), max_leaves=12), min_size=1, max_size=5)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(_docs, st.booleans())
def test_positions_match_the_composer_for_generated_documents(data, flow):
    text = yaml.dump(data, Dumper=_Dumper, default_flow_style=flow, allow_unicode=True)
    doc = load_yaml(text.encode(), "m.yaml")
    assert isinstance(doc, Document), (text, doc)
    assert json.dumps(doc.data, sort_keys=True) == json.dumps(data, sort_keys=True)
    values, keys = _composed_positions(text)
    assert doc.positions == values and doc.key_positions == keys


@pytest.mark.parametrize("raw", [b"? Ra, ", b"? x", b"a: 1\n? b"])
def test_an_empty_value_at_the_end_of_the_stream_is_placed_inside_the_file(raw: bytes):
    """libyaml marks such a value one line past the last; an editor jumping there would find no line."""
    doc = load_yaml(raw, "m.yaml")
    assert isinstance(doc, Document), doc
    last_line = raw.count(b"\n") + 1
    for span in [*doc.positions.values(), *doc.key_positions.values()]:
        assert 1 <= span.line <= last_line, (raw, span)


def _shallow_spans(doc: Document, pointers) -> dict:
    """Every span doc.span() gives for these pointers (value and key) without making the deeper positions."""
    return {(p, key): doc.span(p, key=key) for p in pointers for key in (False, True)}


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(_docs, st.booleans(), st.booleans())
def test_the_first_pass_gives_the_shallow_spans_of_the_full_one(data, flow, anchored):
    """load_yaml records positions of pointers up to two tokens deep and makes the rest on first use:
    spans asked for before that are those of the full pass (here against the composer), aliases included."""
    text = yaml.dump(data, Dumper=_Dumper, default_flow_style=flow, allow_unicode=True)
    if anchored:  # the same document once more under an alias: walked, not read from events
        text = "base: &b\n" + "".join(f"  {line}\n" for line in text.splitlines()) + "copy: *b\n"
    doc = load_yaml(text.encode(), "m.yaml")
    assert isinstance(doc, Document), (text, doc)
    values, keys = _composed_positions(text)
    shallow = [p for p in {*values, *keys} if p.count("/") <= 2]
    before = _shallow_spans(doc, shallow)
    assert doc._complete is not None or not any(p.count("/") > 2 for p in values)  # nothing deeper made yet
    assert doc.positions == values and doc.key_positions == keys  # now made: the full pass
    assert before == _shallow_spans(doc, shallow)
    deep = [p for p in values if p.count("/") > 2]
    assert all(doc.span(p) == values[p] for p in deep)


def test_diagnostics_below_the_shallow_depth_keep_their_spans():
    """The first pass records no deep positions; a diagnostic there is reported by the full pass."""
    assert _rules(b"a:\n  b:\n    c: 1\n    c: 2\n") == [("yaml.duplicate-key", (4, 5))]
    errors = load_yaml(b"a:\n  b:\n    c: 1\n    c: 2\n", "m.yaml")
    assert "first defined at m.yaml:3:5" in errors[0].message
    errors = load_yaml(b"a: &x {k: 1, k: 2}\nb: *x\n", "m.yaml")  # a duplicate inside an anchored mapping
    assert [(e.rule, e.span.line, e.span.col) for e in errors][0] == ("yaml.duplicate-key", 1, 14)
    assert "first defined at m.yaml:1:8" in errors[0].message
    assert _rules(b"a:\n  b:\n    c: !!int x\n") == [("yaml.scalar", (3, 8))]
