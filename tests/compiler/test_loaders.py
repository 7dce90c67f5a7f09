"""Loaders keep positions and normalise format quirks (BOM, CRLF, dates, duplicate keys)."""

from __future__ import annotations

from compiler.diagnostics import Document, Span
from compiler.loaders.toml import load_toml
from compiler.loaders.yaml import load_yaml


def test_yaml_positions_for_keys_and_values():
    doc = load_yaml(b"source: s\nentries:\n  - domain: task\n    payload: {a: [1, 2]}\n", "m.yaml")
    assert isinstance(doc, Document)
    assert doc.span("/entries/0/domain") == Span("m.yaml", 3, 13)
    assert doc.span("/entries/0/domain", key=True) == Span("m.yaml", 3, 5)
    assert doc.span("/entries/0/payload/a/1") == Span("m.yaml", 4, 22)
    # a pointer without its own position falls back to the nearest ancestor
    assert doc.span("/entries/0/missing") == Span("m.yaml", 3, 5)


def test_yaml_dates_stay_strings_and_bom_crlf_are_accepted():
    doc = load_yaml(b"\xef\xbb\xbfversion: 2025-12-07\r\nn: 3\r\n", "m.yaml")
    assert doc.data == {"version": "2025-12-07", "n": 3}
    assert doc.span("/n") == Span("m.yaml", 2, 4)


def test_yaml_recursive_alias_and_deep_nesting_are_errors():
    errors = load_yaml(b"a: &a [*a]\n", "m.yaml")
    assert isinstance(errors, list) and errors[0].rule in ("yaml.recursive", "yaml.syntax")
    deep = load_yaml(b"a: " + b"[" * 100 + b"]" * 100 + b"\n", "m.yaml")
    assert isinstance(deep, list) and deep[0].rule == "yaml.too-deep"


def test_yaml_non_string_keys_and_merge_keys_are_errors():
    errors = load_yaml(b"1: a\nb: &x {c: 1}\nd:\n  <<: *x\n", "m.yaml")
    assert {e.rule for e in errors} == {"yaml.key-type", "yaml.merge-key"}


def test_toml_positions_through_tables_inline_tables_and_arrays():
    text = b'[a]\nb = 1\n[a.c]\nd = {e = "x", f = [1, 2]}\n[[g]]\nh = 1\n[[g]]\nh = 2\n'
    doc = load_toml(text, "s.toml")
    assert doc.data == {"a": {"b": 1, "c": {"d": {"e": "x", "f": [1, 2]}}}, "g": [{"h": 1}, {"h": 2}]}
    assert doc.span("/a/b", key=True) == Span("s.toml", 2, 1)
    assert doc.span("/a/c/d/e", key=True) == Span("s.toml", 4, 6)
    assert doc.span("/a/c/d/f/1") == Span("s.toml", 4, 23)
    assert doc.span("/g/1/h", key=True) == Span("s.toml", 8, 1)


def test_toml_duplicate_keys_name_both_places():
    errors = load_toml(b'[http]\nport = 1\n\n[http]\nport = 2\n', "s.toml")
    assert errors[0].rule == "toml.duplicate-key"
    assert errors[0].span == Span("s.toml", 4, 1)
    assert "s.toml:1:1" in errors[0].message


def test_toml_multiline_strings_do_not_shift_positions():
    doc = load_toml(b'a = """\nline\nline"""\nb = 2\n', "s.toml")
    assert doc.span("/b", key=True) == Span("s.toml", 4, 1)
