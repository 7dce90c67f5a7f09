"""The compiler's orjson writer: the same bytes as runtime.canonical.pretty_bytes, or that writer itself."""

from __future__ import annotations

import json
import math

import orjson
from hypothesis import example, given, settings, strategies as st

from compiler.fastjson import floats_spelled_alike, pretty_artifact_bytes
from runtime.canonical import compact_text, pretty_bytes


def _reference(value) -> bytes:
    return (json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


def _written(value) -> bytes:
    """What the compiler writes for value: the compact text first (the digest's; it refuses what json refuses)."""
    return pretty_artifact_bytes(value, compact_text(value))


# floats of every magnitude: the 0 < |x| < 1e-4 band is where the spellings part
_floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.builds(lambda m, e: m * 10.0 ** e, st.floats(-10, 10, allow_nan=False), st.integers(-30, 30)),
    st.sampled_from([1e-4, 9.999999999999999e-05, 1e-5, 1.5e-7, 5e-324, 1e15, 1e16, 9999999999999998.0, 1.5e16,
                     1.7976931348623157e308, -0.0, 0.0]))
_text = st.text(alphabet=st.one_of(st.characters(), st.sampled_from("\u2028\u2029\x00\x1f\x7f\"\\\n\t\b\f\r/é𝄞")),
                max_size=10)
_keys = st.one_of(_text, st.sampled_from(["a", "B", "é", "\uffff", "𝄞", "1e-05", "digest"]))
_ints = st.one_of(st.integers(), st.integers(-2 ** 63, 2 ** 64 - 1),
                  st.sampled_from([2 ** 64, -2 ** 63 - 1, 2 ** 53 + 1]))
_scalars = st.one_of(st.none(), st.booleans(), _ints, _floats, _text)
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner),
    st.dictionaries(_keys, inner, max_size=4),
    st.dictionaries(st.integers(-3, 3), inner, max_size=2)),  # non-string keys: json writes them, orjson refuses
    max_leaves=30)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=6))
@example({"tiny": 2e-05, "small": 1.5e-07, "edge": 1e-4, "big": 1e16, "huge": 2 ** 64, "line": "\u2028"})
@example({"deep": [[[[[[[[[[1.5]]]]]]]]]]})
def test_the_compiler_writes_exactly_the_canonical_bytes(data):
    try:
        expected = _reference(data)
    except (ValueError, UnicodeEncodeError, TypeError) as exc:  # e.g. a lone surrogate: UTF-8 cannot hold it
        try:
            _written(data)
        except type(exc):
            return
        raise AssertionError(f"{data!r} was written although the canonical writer refuses it")
    assert _written(data) == expected == pretty_bytes(data)


# data orjson takes: string keys, 64-bit integers, no lone surrogates, floats outside 0 < |x| < 1e-4
_plain_floats = _floats.filter(lambda x: x == 0 or abs(x) >= 1e-4)
_plain_text = st.text(max_size=10, alphabet=st.characters(blacklist_categories=("Cs",))
                      | st.sampled_from("\u2028\x00\x1f\x7f\"\\\n"))
_plain = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2 ** 63, 2 ** 64 - 1), _plain_floats, _plain_text),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_plain_text, inner, max_size=4)),
    max_leaves=40)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_plain_text, _plain, max_size=6))
def test_orjson_spells_plain_data_as_json_does(data):
    """The claim the gate rests on: outside the tiny-float band, orjson's bytes are json's."""
    assert orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n" == _reference(data)
    assert _written(data) == _reference(data)


def test_orjson_refusals_and_the_float_gate_fall_back_to_the_canonical_writer():
    deep: list = [1.0]
    for _ in range(300):  # deeper than orjson's 255 levels
        deep = [deep]
    for value in ({"big": 2 ** 64, "neg": -2 ** 63 - 1}, {1: "int key", 2: "x"}, {"a": [deep]},
                  {"tiny": [1e-05, 2.5e-300]}, {"edge": [9.99e-05, -1e-07]}):
        assert _written(value) == _reference(value)
    assert not floats_spelled_alike(compact_text({"x": 2e-05}))
    assert floats_spelled_alike(compact_text({"key": "type-e-1", "x": 1e-4, "y": 1e22, "z": 1.5e300}))


def test_nan_and_infinity_are_refused_before_any_writer_runs():
    for bad in (math.nan, math.inf, -math.inf):
        try:
            compact_text({"x": bad})
        except ValueError:
            continue
        raise AssertionError(f"{bad} reached a writer")
