"""YAML plain scalars are read by the YAML 1.2 core schema; the YAML 1.1 spellings get a hint when they fail."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from compiler.diagnostics import Document, Span
from compiler.loaders.yaml import load_yaml


def _value(text: str):
    doc = load_yaml(f"a: {text}\n".encode(), "m.yaml")
    assert isinstance(doc, Document), doc
    return doc.data["a"]


@pytest.mark.parametrize("text,expected", [
    ("no", "no"), ("yes", "yes"), ("on", "on"), ("off", "off"), ("Y", "Y"),  # strings in 1.2
    ("true", True), ("False", False), ("TRUE", True),
    ("~", None), ("null", None), ("", None), ("NULL", None),
    ("014", 14), ("-0", 0), ("+12", 12), ("0o14", 12), ("0x1F", 31),
    ("1_000", "1_000"), ("0b101", "0b101"), ("190:20:30", "190:20:30"), ("0x_1", "0x_1"),
    ("1e3", 1000.0), ("1.5", 1.5), ("-.5", -0.5), (".5", 0.5), ("1.", 1.0), ("1E-2", 0.01),
    ("2025-12-07", "2025-12-07"), ("'yes'", "yes"), ('"014"', "014"), ("=", "="), ("<<", "<<"),
    ("!!int 0o14", 12), ("!!float 3", 3.0), ("!!str 12", "12"),
])
def test_plain_scalars_follow_the_core_schema(text, expected):
    value = _value(text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("text,rule", [
    (".inf", "yaml.nan"), ("-.Inf", "yaml.nan"), (".NaN", "yaml.nan"), ("1e999", "yaml.nan"),
    ("!!bool yes", "yaml.scalar"), ("!!int 1_000", "yaml.scalar"), ("!!float abc", "yaml.scalar"),
    ("!!python/name:os.system ''", "yaml.tag"), ("9" * 5000, "yaml.scalar"), ("0x" + "f" * 5000, "yaml.scalar"),
])
def test_refusals_are_kept(text, rule):
    errors = load_yaml(f"x: 1\na: {text}\n".encode(), "m.yaml")
    assert isinstance(errors, list) and [(e.rule, e.span, e.pointer) for e in errors] == [(rule, Span("m.yaml", 2, 4), "/a")]


def test_keys_follow_the_core_schema_too():
    doc = load_yaml(b"yes: 1\nno: 2\non: 3\n", "m.yaml")
    assert doc.data == {"yes": 1, "no": 2, "on": 3}
    errors = load_yaml(b"1: a\ntrue: b\n<<: {c: 1}\n", "m.yaml")
    assert [(e.rule, e.span.line) for e in errors] == [("yaml.key-type", 1), ("yaml.key-type", 2), ("yaml.merge-key", 3)]


def test_yaml11_spellings_are_recorded_only_where_the_readings_differ():
    doc = load_yaml(b"a: yes\nb: 014\nc: 1e3\nd: 0x1F\ne: plain\nf: 'yes'\ng: [off]\n", "m.yaml")
    assert set(doc.readings) == {"/a", "/b", "/c", "/g/0"}
    assert doc.readings["/a"] == ("YAML 1.2 reads yes as the string 'yes', YAML 1.1 read it as true; "
                                  "to mean true, write true")
    assert "the integer 14" in doc.readings["/b"] and "write 12" in doc.readings["/b"]
    assert "the number 1000.0" in doc.readings["/c"] and "write '1e3'" in doc.readings["/c"]


def test_a_yaml11_integer_too_long_to_print_is_a_string_without_a_hint():
    # YAML 1.1 reads `0x_fff...` as a 20,000-bit integer, which Python cannot spell in a hint (found by
    # bench/fuzz_yaml.py: it was a ValueError traceback); YAML 1.2 reads a string, which is kept
    text = "0x_" + "f" * 5000
    doc = load_yaml(f"a: {text}\nb: 0x_1\n".encode(), "m.yaml")
    assert isinstance(doc, Document), doc
    assert doc.data == {"a": text, "b": "0x_1"}
    assert "/a" not in doc.readings and "the integer 1" in doc.readings["/b"]


def test_a_schema_error_on_a_yaml11_spelling_says_how_it_was_read_and_what_to_write(tmp_path: Path):
    (tmp_path / "deployment" / "manifests").mkdir(parents=True)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "default.toml").write_text('[profile]\nname = "default"\n\n[http]\ntasks_auth = "none"\n')
    (tmp_path / "deployment" / "manifests" / "app.yaml").write_text(
        "source: t\nentries:\n  - domain: task\n    key: extract\n    provider: demo\n"
        "    factory: oneiric.demo.tasks:extract\n    priority: 1_000\n"
        "    metadata: {required: off}\n")
    result = subprocess.run([sys.executable, "-m", "oneiric.cli", "compile", "--project-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert lines[0].startswith("deployment/manifests/app.yaml:7:15: error: $.entries[0].priority: '1_000' is not of "
                               "type 'integer' (YAML 1.2 reads 1_000 as the string '1_000', YAML 1.1 read it as the "
                               "integer 1000; to mean the integer 1000, write 1000)"), result.stderr
    assert lines[1].startswith("deployment/manifests/app.yaml:8:26: error: $.entries[0].metadata.required: 'off' is not "
                               "of type 'boolean'"), result.stderr
    assert "to mean false, write false" in lines[1]


def test_a_credential_keys_value_appears_in_neither_the_error_nor_the_yaml11_hint():
    from compiler.schema import check_subtree

    doc = load_yaml(b"password: no\nmode: no\n", "m.yaml")
    found = {d.pointer: d for d in check_subtree(doc, doc.data, {"properties": {
        "password": {"type": "integer"}, "mode": {"type": "integer"}}}, "")}
    assert found["/password"].message == "invalid value (type: 'integer')" and found["/password"].hint is None
    assert "'no'" in found["/mode"].message and "YAML 1.1" in found["/mode"].hint  # other keys keep both
