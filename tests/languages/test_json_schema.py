"""JSON Schema 2020-12 as its test suite says: boolean sub-schemas, `items: false`, integer-valued floats, $ref
escapes; fastschema agrees with jsonschema (the reference) on generated schemas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from compiler import fastschema
from compiler.diagnostics import Document
from compiler.schema import check_subtree, jsonschema_validator

DOC = Document("m.yaml", None, "", {}, {})


def _valid(schema, instance) -> bool:
    return not check_subtree(DOC, instance, schema, "")


@pytest.mark.parametrize("schema,good,bad", [
    ({"properties": {"dsn": {"anyOf": [True, {"type": "integer"}]}}}, {"dsn": "x"}, None),
    ({"properties": {"a": False}}, {"b": 1}, {"a": 1}),
    ({"oneOf": [True, True]}, None, 1),
    ({"patternProperties": {"^x": False}}, {"y": 1}, {"x": 1}),
    ({"propertyNames": False}, {}, {"a": 1}),
    (False, None, "anything"),
    ({"items": False}, [], [1, "foo", True]),
    ({"maxLength": 2.0}, "ab", "abc"),
    ({"minItems": 1.0}, [1], []),
])
def test_the_suite_failure_classes_agree_with_the_spec(schema, good, bad):
    if good is not None:
        assert _valid(schema, good)
    if bad is not None:
        assert not _valid(schema, bad)


def test_ref_pointers_are_percent_decoded_and_unescaped():
    schema = {"$defs": {"a%b": {"type": "integer"}, 'q"t': {"type": "string"}, "s/l": {"minimum": 3},
                        "t~d": {"maximum": 5}},
              "properties": {"p": {"$ref": "#/$defs/a%25b"}, "q": {"$ref": "#/$defs/q%22t"},
                             "s": {"$ref": "#/$defs/s~1l"}, "t": {"$ref": "#/$defs/t~0d"}}}
    validator = fastschema.Validator(schema, {})
    assert not list(validator.iter_errors({"p": 1, "q": "x", "s": 4, "t": 4}))
    assert [e.absolute_path for e in validator.iter_errors({"p": "x", "q": 1, "s": 2, "t": 6})] == [
        ["p"], ["q"], ["s"], ["t"]]


def test_a_boolean_sub_schema_in_a_manifest_compiles_without_a_traceback(tmp_path: Path):
    (tmp_path / "deployment" / "manifests").mkdir(parents=True)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "default.toml").write_text('[profile]\nname = "default"\n\n[http]\ntasks_auth = "none"\n')
    (tmp_path / "deployment" / "manifests" / "app.yaml").write_text(
        "source: t\nentries:\n  - domain: adapter\n    key: cache\n    provider: memory\n"
        "    factory: oneiric.demo.vector:MemoryVectorStore\n"
        "    settings_schema:\n      type: object\n      properties:\n"
        "        dsn: {anyOf: [true, {type: integer}]}\n        never: false\n")
    result = subprocess.run([sys.executable, "-m", "oneiric.cli", "compile", "--project-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr


# -- generated schemas: fastschema against jsonschema, the reference ------------------------------------------------
_names = st.sampled_from(["a", "b", "c"])
_json = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from([0.5, 2.0, -1.5])
                     | st.sampled_from(["", "a", "ab", "xyz", "a1", "b\n", "a\r"]),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_names, inner, max_size=3),
                     max_leaves=8)
_types = st.sampled_from(["object", "array", "string", "integer", "number", "boolean", "null"])


def _schemas(inner):
    keyword = st.one_of(
        st.fixed_dictionaries({"type": _types | st.lists(_types, min_size=1, max_size=2, unique=True)}),
        st.fixed_dictionaries({"enum": st.lists(_json, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"const": _json}),
        st.fixed_dictionaries({"properties": st.dictionaries(_names, inner, max_size=2)}),
        st.fixed_dictionaries({"additionalProperties": inner}),
        st.fixed_dictionaries({"required": st.lists(_names, max_size=2, unique=True)}),
        st.fixed_dictionaries({"patternProperties": st.dictionaries(st.sampled_from(["^a", "b$", "."]), inner,
                                                                    max_size=2)}),
        st.fixed_dictionaries({"propertyNames": inner}),
        st.fixed_dictionaries({"items": inner}),
        st.fixed_dictionaries({"minItems": st.integers(0, 3) | st.sampled_from([1.0, 2.0])}),
        st.fixed_dictionaries({"uniqueItems": st.booleans()}),
        st.fixed_dictionaries({"pattern": st.sampled_from(["^a", "[0-9]", "z", "b$", "^a.$"])}),
        st.fixed_dictionaries({"minLength": st.integers(0, 3) | st.sampled_from([2.0])}),
        st.fixed_dictionaries({"maxLength": st.integers(0, 3) | st.sampled_from([1.0])}),
        st.fixed_dictionaries({"minimum": st.integers(-2, 2)}),
        st.fixed_dictionaries({"maximum": st.sampled_from([0, 1.5, 3])}),
        st.fixed_dictionaries({"exclusiveMinimum": st.integers(-2, 2)}),
        st.fixed_dictionaries({"anyOf": st.lists(inner, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"oneOf": st.lists(inner, min_size=1, max_size=3)}),
    )
    return st.booleans() | st.lists(keyword, max_size=3).map(lambda parts: {k: v for p in parts for k, v in p.items()})


schemas = st.recursive(st.booleans() | st.just({}), _schemas, max_leaves=6)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(schemas, st.lists(_json, min_size=1, max_size=4))
def test_fastschema_agrees_with_jsonschema_on_generated_schemas(schema, instances):
    fastschema.check_schema(schema)  # every generated schema uses supported keywords only
    # the reference is jsonschema reading regexes as ECMA-262 (test_schema_regex.py pins that reading)
    ours, reference = fastschema.Validator(schema), jsonschema_validator(schema)
    for instance in instances:
        got, want = list(ours.iter_errors(instance)), list(reference.iter_errors(instance))
        assert (not got) == (not want), (schema, instance, got, want)
        # where: the same paths, but for a `false` sub-schema's error, which jsonschema reports without the path
        # of the value it refuses (ours keeps it, so the diagnostic points at that value)
        assert sorted(tuple(map(str, e.absolute_path)) for e in got if e.validator != "false") == sorted(
            tuple(map(str, e.absolute_path)) for e in want if e.validator is not None), (schema, instance)
