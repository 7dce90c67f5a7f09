"""Large documents: the jsonschema-rs verdict and the pretty JSON writer change speed, never bytes or messages."""

from __future__ import annotations

import json

from hypothesis import given, settings, strategies as st

from compiler import schema
from compiler.loaders.yaml import load_yaml
from runtime.canonical import pretty_bytes, pretty_text


def _manifest(n: int, broken: dict[int, str] | None = None) -> bytes:
    lines = ["source: big", "entries:"]
    for i in range(n):
        extra = (broken or {}).get(i, "")
        lines += [f"  - domain: task", f"    key: job{i}", "    provider: demo",
                  "    factory: oneiric.demo.tasks:extract", f"    priority: {i % 7}{extra}"]
    return ("\n".join(lines) + "\n").encode()


def _explained(doc):
    return schema.check_value(doc, doc.data, schema.named_validator("manifest.schema.json"), "")


def test_a_large_valid_manifest_has_no_errors():
    doc = load_yaml(_manifest(schema.LARGE_DOCUMENT + 10), "m.yaml")
    assert schema._fast_verdict("manifest.schema.json", doc.data) is True
    assert schema.check_document(doc, "manifest.schema.json") == [] == _explained(doc)


def test_a_large_manifest_with_errors_gets_the_same_located_errors_as_a_small_one():
    n = schema.LARGE_DOCUMENT + 10
    doc = load_yaml(_manifest(n, {3: "\n    proivder: x", n - 1: "\n    version: 5"}), "m.yaml")
    found = schema.check_document(doc, "manifest.schema.json")
    assert found == _explained(doc)
    assert [(d.rule, d.span.line, d.pointer) for d in found] == [
        ("schema.unknown-key", 23, "/entries/3/proivder"),
        ("schema.type", 5 * (n - 1) + 9, f"/entries/{n - 1}/version")], found


def test_a_value_only_python_reads_as_valid_is_not_refused():
    # Python's `$` matches before a final newline, the Rust regex's does not: jsonschema-rs refuses,
    # fastschema decides (valid), as it does for a small document.
    n = schema.LARGE_DOCUMENT + 10
    doc = load_yaml(_manifest(n), "m.yaml")
    doc.data["entries"][5]["key"] = "job5\n"
    assert schema.check_document(doc, "manifest.schema.json") == _explained(doc)


_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                     st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(_values)
def test_pretty_text_is_json_dumps_byte_for_byte(value):
    assert pretty_text(value) == json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)


def test_pretty_text_refuses_and_falls_back_as_json_does():
    for bad in (float("nan"), [1, {"a": float("inf")}]):
        try:
            pretty_text(bad)
        except ValueError:
            pass
        else:
            raise AssertionError(f"{bad!r} was written")
    assert pretty_text({2: "a", 1: [2.5]}) == json.dumps({2: "a", 1: [2.5]}, sort_keys=True, indent=2)
    assert pretty_bytes({"é": "ü"}) == '{\n  "é": "ü"\n}\n'.encode()


def test_a_valid_compile_reads_each_manifest_once(tmp_path, monkeypatch):
    """Positions below `/entries/<i>` are made on first use (a second pass over the YAML text); a valid
    compile of the reference and demo projects (workflows, queue categories, settings schemas, a large
    manifest) never asks for them, and a compile with a finding does, to place it."""
    from compiler import build
    from compiler.loaders import yaml as yaml_loader
    from runtime.about import DEMO_DIR
    from tests.support.env import ROOT

    second_passes: list[str] = []
    full = yaml_loader._all_positions
    monkeypatch.setattr(yaml_loader, "_all_positions", lambda text, path: (second_passes.append(path),
                                                                           full(text, path))[1])
    for project in (ROOT, DEMO_DIR):
        assert build.build_project(project, tmp_path / project.name).ok
    big = tmp_path / "big"
    (big / "deployment" / "manifests").mkdir(parents=True)
    (big / "deployment" / "manifests" / "big.yaml").write_bytes(
        b"source: big\n" + _manifest(schema.LARGE_DOCUMENT + 10).split(b"\n", 1)[1])
    assert build.build_project(big, big / "build").ok
    assert second_passes == []
    (big / "deployment" / "manifests" / "big.yaml").write_bytes(
        b"source: big\n" + _manifest(50, {7: "\n    version: 5"}).split(b"\n", 1)[1])
    result = build.build_project(big, big / "build")
    assert [(d.rule, str(d.span), d.pointer) for d in result.diagnostics] == [
        ("schema.type", "deployment/manifests/big.yaml:43:14", "/entries/7/version")]
    assert second_passes == ["deployment/manifests/big.yaml"]
