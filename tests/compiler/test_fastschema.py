"""The fast validator agrees with jsonschema (the oracle) on Oneiric's own schemas."""

from __future__ import annotations

import copy
import functools
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from compiler import fastschema
from compiler.loaders.toml import load_toml
from compiler.loaders.yaml import load_yaml
from compiler.schema import jsonschema_validator, load_schema, schemas_by_id
from tests.compiler.test_bad_inputs import CASES
from tests.support.env import ROOT

SCHEMAS = ["settings.schema.json", "manifest.schema.json", "providers/cloudtasks.json",
           "providers/gcp.secret_manager.json", "providers/local.json", "profile-artifact.schema.json"]


@functools.lru_cache(maxsize=None)
def _validators(name: str):
    schema = load_schema(name)
    return fastschema.Validator(schema, schemas_by_id()), jsonschema_validator(schema)


def _both(name: str, instance) -> tuple[set, set]:
    fast, oracle = _validators(name)
    key = lambda e: (tuple(e.absolute_path), e.validator, e.message)  # noqa: E731
    return {key(e) for e in fast.iter_errors(instance)}, {key(e) for e in oracle.iter_errors(instance)}


def test_all_own_schemas_are_supported_by_the_fast_validator():
    for name in SCHEMAS + ["manifest-artifact.schema.json", "providers/env.json", "providers/file.json"]:
        fastschema.Validator(load_schema(name), schemas_by_id())


def test_agrees_on_every_bad_input_case_and_the_reference_project():
    compared = 0
    documents = [(load_yaml((ROOT / "deployment/manifests/serverless.yaml").read_bytes(), "m"), "manifest.schema.json")]
    for name in ("serverless.toml", "default.toml"):
        documents.append((load_toml((ROOT / "config" / name).read_bytes(), "s"), "settings.schema.json"))
    for _, (manifest, settings), *_ in CASES:
        raw_m = manifest if isinstance(manifest, bytes) else manifest.encode()
        documents.append((load_yaml(raw_m, "m"), "manifest.schema.json"))
        documents.append((load_toml(settings.encode(), "s"), "settings.schema.json"))
    for doc, schema in documents:
        if isinstance(doc, list):
            continue  # a load error: never reaches a validator
        fast, oracle = _both(schema, doc.data)
        assert fast == oracle, (schema, doc.data)
        compared += 1
    assert compared >= 50


JSON = st.recursive(st.none() | st.booleans() | st.integers(-5, 70000) | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(max_size=8) | st.sampled_from(["hmac", "secret://k", "secret://bad name", "12:30", "", "a.b"]),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=6)


def _mutations(base: dict):
    paths = []

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                paths.append(path + [k])
                walk(v, path + [k])
    walk(base, [])
    return paths


_SETTINGS = load_toml((ROOT / "config/serverless.toml").read_bytes(), "s").data
_MANIFEST = load_yaml((ROOT / "deployment/manifests/serverless.yaml").read_bytes(), "m").data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_agrees_on_random_mutations(data):
    for base, schema in ((_SETTINGS, "settings.schema.json"), (_MANIFEST, "manifest.schema.json")):
        instance = copy.deepcopy(base)
        for _ in range(data.draw(st.integers(1, 3))):
            paths = _mutations(instance)
            if not paths:
                break
            path = data.draw(st.sampled_from(paths))
            node = instance
            for part in path[:-1]:
                node = node[part]
            if data.draw(st.booleans()):
                node[path[-1]] = data.draw(JSON)
            else:
                node[data.draw(st.text(min_size=1, max_size=6))] = data.draw(JSON)
        fast, oracle = _both(schema, instance)
        assert fast == oracle


def test_meta_check_rejects_what_the_2020_12_meta_schema_rejects():
    import pytest
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    bad = [{"type": "strng"}, {"properties": {"a": {"pattern": "("}}}, {"required": "a"}, {"minLength": -1},
           {"enum": "x"}, {"anyOf": []}, {"items": 3}]
    for schema in bad:
        with pytest.raises(fastschema.InvalidSchema):
            fastschema.check_schema(schema)
        with pytest.raises(SchemaError):
            Draft202012Validator.check_schema(schema)
    good = [{"type": ["string", "null"]}, {"properties": {"a": {"type": "integer", "minimum": 0}}, "required": ["a"]}]
    for schema in good:
        fastschema.check_schema(schema)
        Draft202012Validator.check_schema(schema)
    with pytest.raises(fastschema.UnsupportedSchema):
        fastschema.check_schema({"if": {}, "then": {}})
