"""The resolve stage's parts called directly: layering, the catalog, the cross-checks, explain, release notes.

The CLI tests prove the commands; these prove each rule where it lives, with inputs too small for a project.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from compiler import checks
from compiler.catalog import build_catalog, canonical_provider, choose
from compiler.layering import SCHEMA_DEFAULT, Layers, build_layers, schema_defaults
from compiler.loaders.toml import load_toml
from compiler.profiles import resolve_profile
from compiler.schema import load_schema
from runtime.model import Dag, DagNode, Entry
from tests.compiler.inputs import BASE_MANIFEST, BASE_SETTINGS
from tests.support.cli import compile_in_process
from tests.support.projects import write_project

SETTINGS_SCHEMA = load_schema("settings.schema.json")


def settings_doc(text: str, path: str = "config/default.toml"):
    doc = load_toml(text.encode(), path)
    assert not isinstance(doc, list), doc
    return doc


def layers_for(text: str, profile: str = "default") -> Layers:
    doc = settings_doc(text)
    return build_layers(SETTINGS_SCHEMA, resolve_profile(profile, doc), doc)


# ---------------------------------------------------------------- layering

def test_a_leaf_replaces_the_leaves_below_and_above_it():
    layers = Layers()
    layers.set(("a", "b", "c"), 1, "x")
    layers.set(("a", "b"), {"d": 2}, "y")
    assert layers.values == {("a", "b"): {"d": 2}}
    layers.set(("a", "b", "e"), 3, "z")
    assert layers.values == {("a", "b", "e"): 3} and layers.origin(("a", "b", "e")) == "z"
    layers.setdefault(("a", "b", "e"), 4, "w")
    assert layers.get(("a", "b", "e")) == 3
    assert layers.tree() == {"a": {"b": {"e": 3}}} and layers.dotted_provenance() == {"a.b.e": "z"}


def test_layers_are_schema_default_then_profile_then_settings_file():
    layers = layers_for('[profile]\nname = "serverless"\n\n[http]\nport = 9090\n', profile="serverless")
    assert (layers.get(("http", "port")), layers.origin(("http", "port"))) == (9090, "config/default.toml:5:1")
    assert layers.origin(("http", "max_body_bytes")) == SCHEMA_DEFAULT
    # the serverless profile's toggle beats the schema default, and says so
    assert layers.get(("remote", "enabled")) is False and layers.origin(("remote", "enabled")) == "profile:serverless"
    assert schema_defaults(SETTINGS_SCHEMA)[("http", "port")] == 8080


# ---------------------------------------------------------------- catalog

def _entry(domain: str, key: str, provider: str, priority: int = 0, source: str = "m.yaml:1:1") -> Entry:
    return Entry(domain=domain, key=key, provider=provider, factory="oneiric.demo.tasks:extract", priority=priority,
                 source=source)


def test_catalog_holds_builtins_and_entries_and_the_highest_priority_wins():
    catalog = build_catalog((_entry("task", "t", "low", 1), _entry("task", "t", "high", 5)))
    assert {"env", "file", "gcp.secret_manager"} <= set(catalog[("adapter", "secrets")])
    chosen, errors = choose(catalog, layers_for('[profile]\nname = "default"\n'), None)
    assert errors == []
    assert chosen[("task", "t")].candidate.provider == "high"
    assert chosen[("task", "t")].reason == "highest (priority, stack_level) = (5, 0)"
    assert canonical_provider("adapter", "secrets", "gcp") == "gcp.secret_manager"


def test_an_explicit_selection_wins_and_a_tie_is_an_error():
    catalog = build_catalog((_entry("task", "t", "a"), _entry("task", "t", "b")))
    _, errors = choose(catalog, layers_for('[profile]\nname = "default"\n'), None)
    assert [e.rule for e in errors] == ["select.ambiguous"] and "tie" in errors[0].message
    text = '[profile]\nname = "default"\n\n[tasks.selections]\nt = "b"\n'
    chosen, errors = choose(catalog, layers_for(text), settings_doc(text))
    assert errors == [] and chosen[("task", "t")].candidate.provider == "b"
    assert chosen[("task", "t")].reason == "selected at config/default.toml:5:1"
    typo = '[profile]\nname = "default"\n\n[tasks.selections]\nt = "bb"\n'
    _, errors = choose(catalog, layers_for(typo), settings_doc(typo))
    assert errors[0].rule == "select.unknown-provider" and str(errors[0].span) == "config/default.toml:5:5"
    assert errors[0].hint == "did you mean 'b'?"


# ---------------------------------------------------------------- checks

def _workflow(nodes: list[DagNode]) -> Entry:
    return Entry(domain="workflow", key="w", provider="dag", factory="oneiric.demo.tasks:load",
                 dag=Dag(nodes=tuple(nodes)), source="m.yaml:3:5")


def test_dag_checks_name_unknown_tasks_duplicates_and_cycles():
    tasks = (_entry("task", "extract", "demo"),)
    unknown = checks.check_dags(tasks + (_workflow([DagNode("a", "extrac")]),), {})
    assert [d.rule for d in unknown] == ["dag.unknown-task"] and unknown[0].hint == "did you mean 'extract'?"
    twice = checks.check_dags(tasks + (_workflow([DagNode("a", "extract"), DagNode("a", "extract")]),), {})
    assert [d.rule for d in twice] == ["dag.duplicate-id"]
    cycle = checks.check_dags(tasks + (_workflow([DagNode("a", "extract", ("b",)), DagNode("b", "extract", ("a",))]),),
                              {})
    assert [d.rule for d in cycle] == ["dag.cycle"] and "a -> b -> a" in cycle[0].message


def test_factories_outside_the_allowlist_or_not_defined_by_their_module_are_refused():
    found = checks.check_factories((Entry("task", "t", "p", "os:system", source="m.yaml:1:1"),
                                    Entry("task", "u", "p", "oneiric.demo.tasks:json", source="m.yaml:2:1"),
                                    Entry("task", "v", "p", "oneiric.demo.tasks:extract", source="m.yaml:3:1")),
                                   ["oneiric.demo"], {}, None)
    assert [(d.rule, d.span.line) for d in found] == [("factory.not-allowed", 1), ("factory.not-defined", 2)]


def test_task_signatures_are_read_from_defs_under_a_top_level_try_too(tmp_path, monkeypatch):
    (tmp_path / "sigtasks_under_try.py").write_text(
        "try:\n    import no_such_fast_library\nexcept ImportError:\n"
        "    def fast(payload, context):\n        return {}\n\n"
        "def ok(payload, context, inputs):\n    return {}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    entries = (Entry("task", "fast", "p", "sigtasks_under_try:fast", source="m.yaml:1:1"),
               Entry("task", "ok", "p", "sigtasks_under_try:ok", source="m.yaml:2:1"))
    assert checks.check_factories(entries, ["sigtasks_under_try"], {}, None) == []  # both are defined
    found = checks.check_task_signatures(entries, {})
    assert [(d.rule, d.span.line) for d in found] == [("task.signature", 1)]
    assert "fast(payload, context)" in found[0].message


@pytest.mark.parametrize("remote, rule", [
    ('manifest_url = "file:///srv/m.json"\nallow_file_uris = true\nallowed_file_uri_roots = ["/opt"]',
     "remote.file-uri"),
    ('manifest_url = "file:///srv/m.json"', "remote.file-uri"),
    ('manifest_url = "https://example.invalid/m.json"', "remote.pin"),
    ('manifest_url = "http://example.invalid/m.json"', "remote.scheme"),
    ('manifest_url = "file:///opt/m.json"\nallow_file_uris = true\nallowed_file_uri_roots = ["/opt"]', None),
])
def test_remote_urls(remote, rule):
    text = f'[profile]\nname = "default"\n\n[remote]\n{remote}\n'
    found = checks.check_remote(layers_for(text), settings_doc(text))
    assert [d.rule for d in found] == ([rule] if rule else [])
    if rule:
        assert str(found[0].span) == "config/default.toml:5:16"  # the value


def test_auth_credentials_and_secret_references():
    none = '[profile]\nname = "serverless"\n\n[http]\ntasks_auth = "none"\n'
    assert [d.rule for d in checks.check_tasks_auth(layers_for(none, "serverless"), "serverless",
                                                     settings_doc(none))] == ["auth.none"]
    literal = '[profile]\nname = "default"\n\n[adapters.provider_settings.x]\napi_key = "hunter2"\n'
    found = checks.check_credentials(layers_for(literal), settings_doc(literal))
    assert [d.rule for d in found] == ["secret.literal"] and "hunter2" not in found[0].message + (found[0].hint or "")
    bad = '[profile]\nname = "default"\n\n[http]\nhmac_key = "secret://a b"\n'
    refs, errors = checks.collect_secret_refs(layers_for(bad), settings_doc(bad))
    assert refs == {} and [e.rule for e in errors] == ["secret.syntax"]


def test_queue_category_is_the_longest_dotted_prefix_that_is_an_adapter_key():
    assert checks.resolve_category("queue.fast.eu", ["queue", "queue.fast"]) == "queue.fast"
    assert checks.resolve_category("queue", ["queue", "queue.fast"]) == "queue"
    assert checks.resolve_category("cache", ["queue"]) is None


# ---------------------------------------------------------------- explain and release, on a compiled project

@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    root = write_project(tmp_path_factory.mktemp("stages") / "p", BASE_MANIFEST,
                         BASE_SETTINGS.replace("[http]\n", "[http]\nport = 9000\n"))
    compile_in_process(root)
    return root


def test_explain_lists_every_layer_winner_last(compiled):
    from compiler.explain import explain
    from compiler.project import load_project
    from runtime.artifact import decode_profile, parse

    profile = decode_profile(parse((compiled / "build" / "default_profile.json").read_bytes(), "p"), "p")
    settings = load_project(compiled).settings["default"]
    chain = explain("http.port", profile, settings, environ={"ONEIRIC_HTTP__PORT": "9100"})
    assert [(l.name, l.value) for l in chain] == [("schema default", 8080), ("settings file", 9000),
                                                  ("environment", "9100")]
    assert chain[1].origin.startswith("config/default.toml:") and chain[2].origin == "ONEIRIC_HTTP__PORT"
    assert [l.name for l in explain("runtime.supervisor.enabled", profile, settings, environ={})] == \
        ["profile:default"]


def test_release_notes_from_the_build(compiled):
    from compiler import release

    notes = release.build_notes(compiled, compiled / "build", None,
                                environ={"ONEIRIC_RUNTIME__SUPERVISOR__ENABLED": "off", "SOURCE_DATE_EPOCH": "0"})
    (p,) = notes.profiles
    assert notes.verified and notes.generated_at == "1970-01-01T00:00:00Z"
    assert (p.supervisor["effective"], p.supervisor["decided_by"]) == \
        (False, "environment (ONEIRIC_RUNTIME__SUPERVISOR__ENABLED=off)")
    (workflow,) = p.workflows
    assert {k: workflow[k] for k in ("key", "provider", "queue_category", "queue_provider", "nodes")} == {
        "key": "ingest", "provider": "dag", "queue_category": "queue", "queue_provider": None,
        "nodes": [{"id": "a", "task": "extract", "depends_on": [], "attempts": 1},
                  {"id": "b", "task": "extract", "depends_on": ["a"], "attempts": 1}]}
    assert workflow["origin"].startswith("deployment/manifests/app.yaml:")
    text = release.render(notes)
    assert "| decided by | environment (ONEIRIC_RUNTIME__SUPERVISOR__ENABLED=off) |" in text
    broken = compiled / "broken.j2"
    broken.write_text("{{ notes.nope }}\n")
    with pytest.raises(release.ReportError, match="broken.j2"):
        release.render(notes, broken)
