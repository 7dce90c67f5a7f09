"""TOML is read as TOML 1.0.0 exactly: what 1.0 refuses is refused at its line, every key has its own position."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from compiler.diagnostics import Document, Span, pointer_join
from compiler.loaders.toml import TOML_VERSION, load_toml


def _load(text: str) -> Document:
    doc = load_toml(text.encode(), "s.toml")
    assert isinstance(doc, Document), doc
    return doc


def _refusal(text: str) -> tuple[str, int, int]:
    errors = load_toml(text.encode(), "s.toml")
    assert isinstance(errors, list) and errors, errors
    return errors[0].rule, errors[0].span.line, errors[0].span.col


def test_the_declared_version_is_the_one_the_pinned_parser_reads():
    assert TOML_VERSION == "1.0.0"
    major, minor = (int(p) for p in version("tomli").split(".")[:2])
    assert (2, 0) <= (major, minor) < (2, 4), "tomli 2.4 reads TOML 1.1: keep pyproject's pin"


def test_sub_tables_of_each_array_of_tables_element_are_not_duplicates():
    doc = _load("[[arr]]\n[arr.subtab]\nval = 1\n\n[[arr]]\n[arr.subtab]\nval = 2\n")
    assert doc.data == {"arr": [{"subtab": {"val": 1}}, {"subtab": {"val": 2}}]}
    assert doc.span("/arr/1/subtab/val", key=True) == Span("s.toml", 7, 1)
    assert doc.span("/arr/1/subtab") == Span("s.toml", 6, 1)
    assert doc.span("/arr/1") == Span("s.toml", 5, 1)


def test_every_key_has_its_own_position_in_arrays_of_tables_and_inline_tables():
    text = ('top.dotted = 1\n[a.b]\nc = {d = {e = 1}, f = [{g = 2}]}\n[[fruits]]\nname = "x"\n'
            '[fruits.physical]\ncolor = "red"\n[[fruits.varieties]]\nname = "y"\n[[fruits]]\nname = "z"\n')
    doc = _load(text)

    def keys(value, pointer=""):
        if isinstance(value, dict):
            for k, v in value.items():
                yield pointer_join(pointer, k)
                yield from keys(v, pointer_join(pointer, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                yield from keys(v, f"{pointer}/{i}")

    assert set(keys(doc.data)) <= set(doc.key_positions), set(keys(doc.data)) - set(doc.key_positions)
    assert doc.span("/a/b/c/f/0/g", key=True) == Span("s.toml", 3, 25)
    assert doc.span("/fruits/0/varieties/0/name", key=True) == Span("s.toml", 9, 1)
    assert doc.span("/fruits/1/name", key=True) == Span("s.toml", 11, 1)


@pytest.mark.parametrize("value", ["1\u0660", "1.\u0660", "1\x0b", "0x_1", "1__0", "01", "+0x1", "1e", ".5", "1_",
                                   "0b2", "nan1", "1.5E+"])
def test_numbers_follow_the_spec_grammar_not_python(value):
    assert _refusal(f"ok = 1\nn = {value}\n")[:2] == ("toml.syntax", 2)


@pytest.mark.parametrize("text", ["t = {a = 1,}\n", "t = {a = 1,\n b = 2}\n", 'e = "\\e"\n', 'x = "\\x41"\n',
                                  "d = 1987-07-05T17:45Z\n", "t = 17:45\n"])
def test_toml_1_1_only_syntax_is_refused(text):
    assert _refusal("ok = 1\n" + text)[0] == "toml.syntax"


def test_errors_are_at_the_offending_line_not_1_1():
    assert _refusal("a = 1\nb = 2\nc = {x = 1, x = 2}\n")[:2] == ("toml.duplicate-key", 3)
    assert _refusal("[t]\nv = 1\n[x]\nw = 2\n[t]\n") == ("toml.duplicate-key", 5, 1)
    assert _refusal("a = 1\nb = [1,\n2,\n") [:2] == ("toml.syntax", 4)


def test_nan_and_infinity_stay_refused_where_they_are_written():
    assert _refusal("a = 1\nb = nan\n") == ("toml.nan", 2, 5)
    assert _refusal("a = [1.0, -inf]\n") == ("toml.nan", 1, 11)
