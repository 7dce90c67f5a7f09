"""Fuzzing the load stage: YAML and TOML loaders give a Document or located diagnostics, never an exception.

Property tests (hypothesis, bounded: at most 200 examples each, no deadline) over generated
documents (which must round-trip exactly) and byte-level mutations of them and of the reference
project's own files.
"""

from __future__ import annotations

import json
import math
import resource
import signal
from pathlib import Path

import pytest
import tomlkit
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from compiler.diagnostics import Document
from compiler.loaders.toml import load_toml
from compiler.loaders.yaml import load_yaml, resolve_plain
from tests.support.env import ROOT
from tests.support.fuzz_inputs import check_loader_result, mutate

pytestmark = pytest.mark.area("fuzzing")
SEEDS_YAML = [p.read_bytes() for p in sorted((ROOT / "deployment" / "manifests").glob("*.yaml"))]
SEEDS_TOML = [p.read_bytes() for p in sorted((ROOT / "config").glob("*.toml"))]
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None)

#: printable text: PyYAML's emitter writes NEL/LS/PS and other controls raw inside quotes, which its
#: own reader folds (a dumper quirk, not a loader bug), so generated documents avoid them
chars = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"))
keys = st.text(chars, min_size=1, max_size=12)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 70), 2 ** 70),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(chars, max_size=30))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(keys, inner, max_size=4)), max_leaves=20)
documents = st.dictionaries(keys, values, min_size=1, max_size=6)


class _Dumper(yaml.SafeDumper):
    """safe_dump quotes the strings YAML 1.1 would type; this also quotes those YAML 1.2 types (`1e3`, `0o14`)."""

    def represent_str(self, data: str):
        typed = data != "" and resolve_plain(data) != "tag:yaml.org,2002:str"
        return self.represent_scalar("tag:yaml.org,2002:str", data, style="'" if typed else None)


_Dumper.add_representer(str, _Dumper.represent_str)


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang("the loader ran for 5 s (an endless loop?)")


@pytest.fixture(autouse=True)
def memory_and_time_guard():
    """A loader that loops or balloons fails the test instead of taking the machine down: the address
    space may grow by 3 GiB at most, and each call is interrupted after 5 s (see `_timed`)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as fh:
        vm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + (3 << 30), hard))
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _timed(fn, raw: bytes, path: str):
    """Run one loader call under a deadline (SIGALRM): a hang fails the test, a slow machine does not."""
    signal.setitimer(signal.ITIMER_REAL, 5.0)
    try:
        return fn(raw, path)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _json_equal(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_yaml_generated_documents_round_trip_and_mutations_stay_clean(reliability):
    tally = {"docs": 0, "errors": 0}

    @FUZZ
    @given(documents, st.randoms(use_true_random=False), st.booleans())
    def prop(doc, rng, flow):
        raw = yaml.dump(doc, Dumper=_Dumper, allow_unicode=True, default_flow_style=flow, sort_keys=False).encode()
        loaded = _timed(load_yaml, raw, "m.yaml")
        assert check_loader_result(loaded, "m.yaml", raw) == "doc", loaded
        assert _json_equal(loaded.data, doc), (raw, loaded.data)
        bad = mutate(raw, rng)
        tally[check_loader_result(_timed(load_yaml, bad, "m.yaml"), "m.yaml", bad) + "s"] += 1

    prop()
    reliability.set(injects="generated YAML documents (must round-trip exactly), then 1-8 byte-level mutations "
                            "each (special tokens, NUL, 0xff, BOM, CRLF, anchors, tags, truncation)",
                    must_hold="load_yaml returns a Document or located diagnostics; no exception; < 1 s each",
                    figure=f"{tally['docs'] + tally['errors']} mutated inputs ({tally['docs']} documents, "
                           f"{tally['errors']} clean errors), 0 exceptions", inputs=tally["docs"] + tally["errors"], **tally)


def test_toml_generated_documents_round_trip_and_mutations_stay_clean(reliability):
    tally = {"docs": 0, "errors": 0}

    @FUZZ
    @given(documents, st.randoms(use_true_random=False))
    def prop(doc, rng):
        doc = _no_none(doc)  # TOML has no null
        try:
            text = tomlkit.dumps(doc)
        except Exception:  # shapes tomlkit cannot write (mixed arrays of tables): mutation only
            text = ""
        raw = text.encode()
        if text:
            loaded = _timed(load_toml, raw, "s.toml")
            assert check_loader_result(loaded, "s.toml", raw) == "doc", (text, loaded)
            assert _json_equal(loaded.data, doc), (text, loaded.data)
        bad = mutate(raw or SEEDS_TOML[0], rng)
        tally[check_loader_result(_timed(load_toml, bad, "s.toml"), "s.toml", bad) + "s"] += 1

    prop()
    reliability.set(injects="generated TOML documents (must round-trip exactly), then 1-8 byte-level mutations each",
                    must_hold="load_toml returns a Document or located diagnostics; no exception; < 1 s each",
                    figure=f"{tally['docs'] + tally['errors']} mutated inputs ({tally['docs']} documents, "
                           f"{tally['errors']} clean errors), 0 exceptions", inputs=tally["docs"] + tally["errors"], **tally)


def _no_none(value):
    if isinstance(value, dict):
        return {k: _no_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_no_none(v) for v in value if v is not None and v != [] and v != {}]
    return value


@pytest.mark.parametrize("kind", ["yaml", "toml"])
def test_reference_files_mutated(kind, reliability):
    seeds, fn, path = (SEEDS_YAML, load_yaml, "deployment/manifests/serverless.yaml") if kind == "yaml" else (
        SEEDS_TOML, load_toml, "config/serverless.toml")
    tally = {"docs": 0, "errors": 0}

    @FUZZ
    @given(st.sampled_from(seeds), st.randoms(use_true_random=False))
    def prop(seed, rng):
        bad = mutate(seed, rng)
        tally[check_loader_result(_timed(fn, bad, path), path, bad) + "s"] += 1

    prop()
    reliability.set(injects=f"byte-level mutations of the reference project's {kind.upper()} files",
                    must_hold="a Document or located diagnostics; no exception; < 1 s each",
                    figure=f"{sum(tally.values())} inputs ({tally['docs']} still valid, {tally['errors']} clean "
                           "errors), 0 exceptions", inputs=sum(tally.values()), **tally)


def test_arbitrary_bytes(reliability):
    n = {"inputs": 0}

    @FUZZ
    @given(st.binary(max_size=400))
    def prop(raw):
        n["inputs"] += 1
        check_loader_result(_timed(load_yaml, raw, "m.yaml"), "m.yaml", raw)
        check_loader_result(_timed(load_toml, raw, "s.toml"), "s.toml", raw)

    prop()
    reliability.set(injects="arbitrary bytes (0-400) to both loaders",
                    must_hold="a Document or located diagnostics; no exception", figure=f"{n['inputs']} inputs x 2 "
                    "loaders, 0 exceptions", **n)


def test_yaml_float_and_int_spellings_never_give_nan_or_raise(reliability):
    n = {"inputs": 0}

    @FUZZ
    @given(st.one_of(st.integers().map(str), st.integers(1, 6000).map(lambda n: "9" * n), st.floats().map(repr),
                     st.sampled_from([".nan", ".NaN", ".inf", "-.Inf", "0x" + "f" * 5000, "0o777", "1_000",
                                      "190:20:30", "1e400", "-1e400", "0b101", "+12", "0" * 5000 + "1"])))
    def prop(text):
        n["inputs"] += 1
        raw = f"a: {text}\n".encode()
        result = _timed(load_yaml, raw, "m.yaml")
        if check_loader_result(result, "m.yaml", raw) == "doc":
            value = result.data["a"]
            assert not (isinstance(value, float) and not math.isfinite(value))

    prop()
    reliability.set(injects="integers up to 5000 digits, every float repr incl. NaN/inf, YAML 1.1 spellings",
                    must_hold="a finite number, a string, or a located error (no ValueError over 4300 digits)",
                    figure=f"{n['inputs']} scalars, 0 exceptions", **n)


def test_huge_integer_is_a_located_error_not_a_traceback():
    """Regression: `a: 999...` (over Python's 4300-digit limit) raised ValueError out of load_yaml."""
    errors = load_yaml(b"x: 1\na: " + b"9" * 5000 + b"\n", "m.yaml")
    assert [(e.rule, tuple(e.span)) for e in errors] == [("yaml.scalar", ("m.yaml", 2, 4))]


@pytest.mark.parametrize("fn,raw", [(load_yaml, b"a: 0x" + b"f" * 5000), (load_toml, b"a = 0x" + b"f" * 5000),
                                    (load_toml, b"a = 0b" + b"1" * 20000)])
def test_huge_hex_integers_are_errors_not_unwritable_values(fn, raw):
    """Regression: 0x/0b spellings have no digit limit, so the loaders returned ints that json.dumps
    (the emit stage) cannot write: a ValueError traceback at compile."""
    errors = fn(raw, "f")
    assert isinstance(errors, list) and errors[0].pointer == "/a" and errors[0].span.col == (4 if fn is load_yaml else 5)


def test_deep_toml_is_a_located_error_not_a_recursion_error():
    """Regression: 100k nested arrays or 3000 nested inline tables raised RecursionError out of load_toml."""
    for raw in (b"a = " + b"[" * 100000 + b"]" * 100000, b"a = " + b"{b = " * 3000 + b"1" + b"}" * 3000):
        errors = load_toml(raw, "s.toml")
        assert isinstance(errors, list) and errors[0].rule in ("toml.syntax", "toml.too-deep"), errors
        assert errors[0].span.line == 1 and errors[0].span.col > 1


@pytest.mark.parametrize("raw", [b"a = [1,", b"a = [", b"a = {b = 1,", b"a = [}]", b"a = [1,,2]", b"[t]\nx = [\n"])
def test_unterminated_toml_arrays_are_errors_not_an_endless_loop(raw):
    """Regression: the position scanner looped forever on `a = [1,` (and `a = [}]`), growing a dict
    until the kernel killed the process (19 GB in a few minutes)."""
    errors = _timed(load_toml, raw, "s.toml")
    assert isinstance(errors, list) and errors[0].rule == "toml.syntax"


def test_value_count_limits_keep_parsing_under_a_second():
    """Regression: 300k keys took 9 s in load_yaml and 30k keys 3 s in load_toml; now refused at once, located.
    (The YAML limit admits the documented 10,000-entry manifests; see compiler/loaders/yaml.py.)"""
    from compiler.loaders.yaml import MAX_ITEMS

    big_yaml = b"".join(b"k%d: 1\n" % i for i in range(300_000))
    errors = _timed(load_yaml, big_yaml, "m.yaml")  # refused under the 5 s deadline, located
    assert errors[0].rule == "yaml.too-large" and tuple(errors[0].span)[:2] == ("m.yaml", MAX_ITEMS + 1)
    big_toml = b"".join(b"k%d = 1\n" % i for i in range(30_000))
    errors = _timed(load_toml, big_toml, "s.toml")
    assert errors[0].rule == "toml.too-large" and tuple(errors[0].span)[:2] == ("s.toml", 10_001)
    # just under the limits still loads
    assert isinstance(load_toml(b"".join(b"k%d = 1\n" % i for i in range(9_000)), "s.toml"), Document)
