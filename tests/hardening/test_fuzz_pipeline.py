"""Fuzzing past the loaders: the compiler end to end, the runtime's artifact loader, the /tasks/workflow body.

- compile: mutated reference projects through `compiler.cli.main` in process (a traceback would be an
  exception escaping it), every error line located; a sample also through the real subprocess.
- artifacts: mutated, truncated and re-digested (so decoding is reached) artifacts through
  `runtime.artifact.load_artifacts`: loaded, or refused with ArtifactError naming the file.
- delivery: arbitrary and structured bodies through `parse_body`, then signed ones through
  `handle_delivery` on a workflows runtime: never a 500 "internal" answer.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.support.env import ROOT
from tests.support.fuzz_inputs import mutate
from tests.support.procs import ERROR_LINE, assert_clean_failure, oneiric

pytestmark = pytest.mark.area("fuzzing")
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), database=None)
FILES = ["deployment/manifests/serverless.yaml", "config/serverless.toml", "config/default.toml"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    project = tmp_path_factory.mktemp("fuzzref") / "project"
    project.mkdir()
    for name in ("config", "deployment"):
        shutil.copytree(ROOT / name, project / name)
    result = oneiric("compile", "--project-dir", str(project), cwd=project)
    assert result.returncode == 0, result.stderr
    return project


def _compile_in_process(project: Path) -> tuple[int, str, str]:
    from compiler.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["compile", "--project-dir", str(project), "--out", str(project / "out")])
    return code, out.getvalue(), err.getvalue()


def _structural(data: bytes, rng: random.Random) -> bytes:
    """Line-level edits that keep the syntax plausible, so the later stages are reached."""
    lines = data.split(b"\n")
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(lines))
        op = rng.randrange(4)
        if op == 0:
            del lines[i]
        elif op == 1:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif op == 2 and b": " in lines[i]:
            key, _, _ = lines[i].partition(b": ")
            lines[i] = key + b": " + rng.choice([b"1", b"-1", b"true", b"null", b"[]", b"{}", b"''", b"x",
                                                 b"secret://x", b"os:system", b"file:///etc/passwd", b"9" * 30])
        elif op == 3 and b" = " in lines[i]:
            key, _, _ = lines[i].partition(b" = ")
            lines[i] = key + b" = " + rng.choice([b"1", b"-1", b"true", b"[]", b"{}", b'""', b'"x"', b"1.5",
                                                  b'"secret://x"', b'"os:system"', b'"file:///../../etc"'])
    return b"\n".join(lines)


def test_compile_mutated_projects_in_process(reference, tmp_path, reliability):
    tally = {"inputs": 0, "compiled": 0, "refused": 0}
    project = tmp_path / "p"

    @FUZZ
    @given(st.sampled_from(FILES), st.randoms(use_true_random=False), st.booleans())
    def prop(rel, rng, structural):
        if project.exists():
            shutil.rmtree(project)
        shutil.copytree(reference, project, ignore=shutil.ignore_patterns("build", ".oneiric_cache"))
        raw = (reference / rel).read_bytes()
        (project / rel).write_bytes(_structural(raw, rng) if structural else mutate(raw, rng))
        code, out, err = _compile_in_process(project)  # an exception here is a traceback for a user
        tally["inputs"] += 1
        if code == 0:
            tally["compiled"] += 1
            assert sorted(p.name for p in (project / "out").iterdir())
            return
        tally["refused"] += 1
        assert code == 1, (code, err)
        lines = [l for l in err.splitlines() if l.strip() and not l.endswith("error(s)")]
        assert lines, err
        for line in lines:
            assert ERROR_LINE.match(line), line
        assert not (project / "out").exists()

    prop()
    reliability.set(injects="byte-level and line-level mutations of the reference project's manifest and settings, "
                            "compiled through compiler.cli.main in process",
                    must_hold="exit 0 with artifacts, or exit 1 with every error line `file:line:col: error:` and "
                              "nothing written; no exception escapes",
                    figure=f"{tally['inputs']} projects ({tally['compiled']} compiled, {tally['refused']} refused "
                           "cleanly), 0 tracebacks", **tally)


def test_compile_mutated_projects_subprocess_sample(reference, tmp_path, reliability):
    rng = random.Random(7)
    tally = {"inputs": 0, "compiled": 0, "refused": 0}
    for i in range(8):
        project = tmp_path / f"p{i}"
        shutil.copytree(reference, project, ignore=shutil.ignore_patterns("build", ".oneiric_cache"))
        rel = FILES[i % len(FILES)]
        raw = (reference / rel).read_bytes()
        (project / rel).write_bytes(mutate(raw, rng) if i % 2 else _structural(raw, rng))
        result = oneiric("compile", "--project-dir", str(project), cwd=project)
        tally["inputs"] += 1
        if result.returncode == 0:
            tally["compiled"] += 1
            continue
        assert_clean_failure(result)
        assert result.error_lines, result.stderr
        tally["refused"] += 1
    reliability.set(injects="8 mutated reference projects through `python -m oneiric.cli compile` (subprocess)",
                    must_hold="exit 0 or exit 1 with located errors; `Traceback` never on stderr",
                    figure=f"{tally['inputs']} projects ({tally['compiled']} compiled, {tally['refused']} refused), "
                           "0 tracebacks", **tally)


# ---------------------------------------------------------------- the artifact loader

def _mutate_json(obj, rng: random.Random):
    """Change one value somewhere in the artifact (type swaps, deletions), keeping it a JSON object."""
    paths = []

    def walk(node, path):
        paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + [k])
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, path + [i])

    walk(obj, [])
    # mostly values inside entries, selections, secrets...: where decoding has shapes to expect
    deep = [p for p in paths if len(p) >= 3] or paths[1:]
    path = rng.choice(deep if rng.random() < 0.8 else paths[1:])
    parent = obj
    for part in path[:-1]:
        parent = parent[part]
    choice = rng.randrange(3)
    if choice == 0 and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = rng.choice([None, 0, -1, 1.5, "", "x", [], {}, [1], {"a": 1}, True, "../../etc/passwd",
                                       "os:system", 10 ** 30])
    return obj


def test_artifact_loader_refuses_mutations_cleanly(reference, tmp_path, reliability):
    from runtime.artifact import ArtifactError, load_artifacts
    from runtime.canonical import compute_digest, pretty_bytes

    build = reference / "build"
    originals = {p.name: p.read_bytes() for p in build.iterdir()}
    tally = {"inputs": 0, "loaded": 0, "refused": 0, "redigested": 0}
    work = tmp_path / "build"
    work.mkdir()

    @FUZZ
    @given(st.sampled_from(["serverless_profile.json", "serverless_manifest.json"]), st.randoms(use_true_random=False),
           st.sampled_from(["bytes", "truncate", "redigest"]))
    def prop(name, rng, how):
        for n, data in originals.items():
            (work / n).write_bytes(data)
        raw = originals[name]
        if how == "bytes":
            bad = mutate(raw, rng)
        elif how == "truncate":
            bad = raw[:rng.randrange(len(raw))]
        else:  # a consistent digest: decoding itself is fuzzed
            obj = _mutate_json(json.loads(raw), rng)
            obj.pop("digest", None)
            obj["digest"] = compute_digest(obj)
            bad = pretty_bytes(obj)
            tally["redigested"] += 1
        (work / name).write_bytes(bad)
        tally["inputs"] += 1
        try:
            load_artifacts(work / "serverless_profile.json", base=tmp_path)
        except ArtifactError as exc:
            assert "build/" in str(exc), str(exc)  # names the artifact or the manifest it links to
            tally["refused"] += 1
        else:
            tally["loaded"] += 1

    prop()
    reliability.set(injects="mutated bytes, truncations and re-digested structural edits (type swaps, deleted keys) "
                            "of the compiled serverless artifacts, through runtime.artifact.load_artifacts",
                    must_hold="loaded, or ArtifactError naming the file; no other exception",
                    figure=f"{tally['inputs']} artifacts ({tally['redigested']} re-digested): {tally['refused']} "
                           f"refused with a clear error, {tally['loaded']} loaded, 0 tracebacks", **tally)


# ---------------------------------------------------------------- the delivery body

json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                           max_leaves=10)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"workflow": st.one_of(st.sampled_from(["ingest", "noop3", "", " ", "nope"]), json_values)},
                          optional={"run_id": st.one_of(st.text(max_size=40), json_values),
                                    "context": json_values, "metadata": json_values,
                                    "result": json_values, "checkpoints": json_values}).map(
        lambda d: json.dumps(d).encode()),
    st.sampled_from([b'{"workflow": "ingest", "context": {"x": NaN}}', b'{"workflow": "ingest", "run_id": Infinity}',
                     b'{"workflow": "ingest"' + b', "a": 1' * 10, b"\xef\xbb\xbf{\"workflow\": \"ingest\"}",
                     b'{"workflow": "ingest", "workflow": "noop3"}', b"[" * 100_000, b'{"workflow": 1e999}']),
)


def test_parse_body_never_raises_anything_but_bad_request(reliability):
    from runtime.workflows.endpoint import BadRequest, parse_body

    tally = {"inputs": 0, "accepted": 0, "refused": 0}

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(bodies)
    def prop(body):
        tally["inputs"] += 1
        try:
            msg = parse_body(body)
        except BadRequest as exc:
            assert str(exc)
            tally["refused"] += 1
            return
        tally["accepted"] += 1
        assert isinstance(msg["workflow"], str) and msg["workflow"].strip()
        assert set(msg) <= {"workflow", "run_id", "context", "metadata"}

    prop()
    reliability.set(injects="arbitrary bytes, arbitrary JSON, delivery-shaped objects with wrong types and extra "
                            "fields (result, checkpoints), NaN/Infinity, 100k open brackets, BOM, duplicate keys",
                    must_hold="runtime.workflows.endpoint.parse_body returns a checked message or raises its "
                              "400 error; nothing else",
                    figure=f"{tally['inputs']} bodies ({tally['accepted']} accepted, {tally['refused']} refused "
                           "with 400), 0 other exceptions", **tally)


def test_handle_delivery_answers_every_signed_body_without_internal_errors(tmp_path, reliability):
    from runtime.tasks_auth import sign
    from runtime.workflows.endpoint import handle_delivery
    from runtime.workflows.service import stop
    from tests.support.fake_runtime import FakeRuntime, HMAC_KEY

    rt = FakeRuntime(tmp_path)
    tally: dict[str, int] = {"inputs": 0}
    try:
        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(bodies, st.booleans())
        def prop(body, signed):
            headers = {"Content-Type": "application/json"}
            if signed:
                headers["X-Oneiric-Signature"] = sign(HMAC_KEY.encode(), body)
            status, payload, _ = handle_delivery(rt, body, headers)
            tally["inputs"] += 1
            tally[str(status)] = tally.get(str(status), 0) + 1
            assert payload.get("error") != "internal", payload
            assert status in (200, 400, 401, 404, 409, 413, 500), (status, payload)
            if status == 500:
                assert payload["error"] in ("node_failed", "workflow_invalid"), payload
            if not signed:
                assert status in (401, 413), (status, payload)

        prop()
    finally:
        stop(rt)
    codes = ", ".join(f"{k}: {v}" for k, v in sorted(tally.items()) if k != "inputs")
    reliability.set(injects="the same bodies, signed (HMAC) and unsigned, through handle_delivery on a "
                            "workflows runtime (real service, engine and SQLite run store)",
                    must_hold="an answer from the endpoint's table (200/400/401/404/409/413, 500 only for a failed "
                              "node); never 500 internal; unsigned always 401 or 413",
                    figure=f"{tally['inputs']} deliveries ({codes}), 0 internal errors", **tally)


def test_redigested_artifact_of_the_wrong_shape_is_refused_by_orchestrate(reference, tmp_path, reliability):
    """Regression: a profile whose `secrets` (or a manifest whose `dag`) had the wrong JSON type, with a
    digest recomputed to match, crashed the decoder with TypeError/AttributeError: a traceback at cold
    start instead of "refuse to start, exit 1, say which file"."""
    from runtime.canonical import compute_digest, pretty_bytes

    from tests.support.env import clean_env

    project = tmp_path / "project"
    shutil.copytree(reference, project)
    path = project / "build" / "serverless_profile.json"
    obj = json.loads(path.read_bytes())
    obj["secrets"] = [1]
    obj.pop("digest")
    obj["digest"] = compute_digest(obj)
    path.write_bytes(pretty_bytes(obj))
    result = oneiric("--profile", "serverless", "orchestrate", "--no-http", cwd=project,
                     env=clean_env(ONEIRIC_CONFIG=str(project / "config" / "serverless.toml")), timeout=30)
    assert_clean_failure(result)
    assert "build/serverless_profile.json: malformed artifact" in result.stderr, result.stderr
    reliability.set(injects="a profile artifact with `secrets: [1]` and a matching recomputed digest",
                    must_hold="orchestrate refuses to start: exit 1, names the file, no traceback",
                    figure=f"exit {result.returncode}: {result.stderr.strip().splitlines()[-1][:120]}")


def test_deeply_nested_body_is_a_400_not_a_500():
    """Regression: `[[[[...` (100k) raised RecursionError out of parse_body; handle_delivery answered
    500 internal, which Cloud Tasks retries forever."""
    from runtime.workflows.endpoint import BadRequest, parse_body

    with pytest.raises(BadRequest, match="nested too deeply"):
        parse_body(b"[" * 100_000)
