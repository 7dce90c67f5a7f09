"""compiler.diff in process: identity matching, paths, provenance lookup for settings and selections."""

from __future__ import annotations

import copy

import pytest

from compiler.diff import DiffInputError, Side, compare, diff_artifacts
from tests.support.env import ROOT

from .helpers import load

PROFILE = load(ROOT / "build" / "serverless_profile.json")


def side(data: dict, name: str = "x") -> Side:
    return Side(name, data, "profile" if data["format"].startswith("oneiric.profile") else "manifest")


def test_identity_lists_ignore_order_and_plain_lists_do_not():
    old = {"items": [{"id": "a", "v": 1}, {"id": "b", "v": 2}], "tags": ["x", "y"]}
    new = {"items": [{"id": "b", "v": 2}, {"id": "a", "v": 1}], "tags": ["y", "x"]}
    changes = list(compare(old, new))
    assert [(c.op, c.path) for c in changes] == [("changed", "$.tags")]


def test_lists_without_identity_compare_as_values():
    changes = list(compare({"w": [{"start": 1}]}, {"w": [{"start": 2}]}))
    assert [(c.op, c.path, c.old, c.new) for c in changes] == [("changed", "$.w", [{"start": 1}], [{"start": 2}])]


def test_duplicate_identities_fall_back_to_whole_values():
    old = {"l": [{"id": "a", "v": 1}, {"id": "a", "v": 2}]}
    new = {"l": [{"id": "a", "v": 1}]}
    assert [c.path for c in compare(old, new)] == ["$.l"]


def test_odd_keys_are_quoted():
    changes = list(compare({"a b": 1, "ok-key": 1}, {"a b": 2, "ok-key": 2}))
    assert [c.path for c in changes] == ["$['a b']", "$.ok-key"]


def test_type_change_is_a_change():
    assert [c.path for c in compare({"a": 1}, {"a": "1"})] == ["$.a"]


def test_selection_settings_carry_the_provider_settings_provenance():
    new = copy.deepcopy(PROFILE)
    for sel in new["selections"]:
        if sel["key"] == "vector":
            sel["settings"]["table"] = "vectors"
    new["settings"]["adapters"]["provider_settings"]["pgvector"]["table"] = "vectors"
    new["provenance"]["adapters.provider_settings.pgvector.table"] = "config/serverless.toml:22:1"
    result = diff_artifacts(side(PROFILE, "old"), side(new, "new"))
    by_path = {c.path: c for c in result.changes}
    sel = by_path["$.selections[adapter/vector/pgvector].settings.table"]
    assert (sel.old, sel.new) == ("embeddings", "vectors")
    assert sel.old_provenance.startswith("manifest default (deployment/manifests/serverless.yaml:")
    assert sel.new_provenance == "config/serverless.toml:22:1"
    setting = by_path["$.settings.adapters.provider_settings.pgvector.table"]
    assert setting.new_provenance == "config/serverless.toml:22:1"
    # the provenance change is folded into the value change, not listed again
    assert len(result.changes) == 2


def test_kinds_must_match():
    manifest = load(ROOT / "build" / "serverless_manifest.json")
    with pytest.raises(DiffInputError, match="cannot compare a profile artifact"):
        diff_artifacts(side(PROFILE), side(manifest))
