"""runtime/model.py: plain classes that behave like the frozen dataclasses they replaced, and the
compiler's converter that structures and unstructures them."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys

import pytest

from compiler.convert import structure, unstructure
from runtime import model
from runtime.model import Dag, DagNode, Entry, EnvKey, Input, RetryPolicy, Selection, replace


def test_construction_by_keyword_or_position_with_defaults():
    a = Entry(domain="task", key="k", provider="p", factory="m:f")
    b = Entry("task", "k", "p", "m:f")
    assert a == b
    assert (a.priority, a.stack_level, a.version, a.settings_schema, a.requires_secrets, a.dag, a.source) == \
        (0, 0, None, None, (), None, "")
    assert a.metadata == {} and a.metadata is not b.metadata  # a fresh dict each, like default_factory
    assert DagNode("n", "t").retry_policy == RetryPolicy(1, 0.5, 30.0, 0.0)
    assert Input("config/x.toml", "ab", "settings").kind == "settings"


def test_bad_arguments_are_type_errors_like_any_constructor():
    with pytest.raises(TypeError, match="factory"):
        Entry(domain="task", key="k", provider="p")
    with pytest.raises(TypeError, match="colour"):
        EnvKey(name="N", path="p", type="string", colour="red")


def test_immutable_equal_and_hashed_by_fields():
    key = EnvKey("ONEIRIC_HTTP__PORT", "http.port", "integer")
    with pytest.raises(AttributeError, match="immutable"):
        key.type = "string"
    with pytest.raises(AttributeError, match="immutable"):
        del key.name
    assert key == EnvKey("ONEIRIC_HTTP__PORT", "http.port", "integer", False)
    assert key != EnvKey("ONEIRIC_HTTP__PORT", "http.port", "integer", True)
    assert key != ("ONEIRIC_HTTP__PORT", "http.port", "integer", False)  # another class never equals
    assert len({key, EnvKey("ONEIRIC_HTTP__PORT", "http.port", "integer")}) == 1
    with pytest.raises(TypeError):  # a dict field makes the object unhashable, as with dataclasses
        hash(Selection("adapter", "queue", "local", "m:f", {}, "builtin", "test"))


def test_repr_names_every_field():
    assert repr(Input("a", "b", "manifest")) == "Input(path='a', sha256='b', kind='manifest')"


def test_replace_copies_with_changes_and_refuses_unknown_fields():
    sel = Selection("adapter", "queue", "local", "m:f", {"a": 1}, "builtin", "test")
    other = replace(sel, provider="cloudtasks")
    assert (other.provider, other.settings, sel.provider) == ("cloudtasks", {"a": 1}, "local")
    with pytest.raises(TypeError, match="colour"):
        replace(sel, colour="red")


def test_copy_and_pickle_round_trip():
    entry = Entry("workflow", "w", "dag", "m:f", dag=Dag((DagNode("a", "t", ("b",), {"x": 1}),)))
    assert copy.copy(entry) == entry and copy.deepcopy(entry) == entry
    assert pickle.loads(pickle.dumps(entry)) == entry


def test_fields_are_the_constructor_order():
    assert model.fields(Input) == ("path", "sha256", "kind")
    assert model.fields(Entry)[-1] == "source"


def test_converter_structures_validated_data_like_cattrs_did_for_dataclasses():
    raw = {"domain": "workflow", "key": "w", "provider": "dag", "factory": "m:f", "version": "1.0",
           "metadata": {"team": "data"}, "requires_secrets": ["s"], "unknown": "ignored",
           "dag": {"nodes": [{"id": "a", "task": "t", "depends_on": ["b"],
                              "retry_policy": {"attempts": 3, "base_delay": 1, "max_delay": 10}}]}}
    entry = structure(raw, Entry)
    assert entry.requires_secrets == ("s",) and entry.priority == 0 and entry.source == ""
    node = entry.dag.nodes[0]
    assert node.depends_on == ("b",) and node.payload == {}
    policy = node.retry_policy
    assert (policy.base_delay, type(policy.base_delay), policy.jitter) == (1.0, float, 0.0)  # ints become floats
    data = unstructure(entry)
    assert data["dag"]["nodes"][0]["retry_policy"] == {"attempts": 3, "base_delay": 1.0, "max_delay": 10.0,
                                                       "jitter": 0.0}
    assert list(data["requires_secrets"]) == ["s"] and "unknown" not in data
    assert structure(data, Entry) == entry


def test_importing_the_model_loads_neither_dataclasses_nor_inspect():
    code = "import sys, runtime.model, runtime.adapters.base; print(sorted({'dataclasses', 'inspect'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
