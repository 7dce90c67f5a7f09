"""Secrets end to end: `oneiric compile` and `python -m oneiric.cli ...` as subprocesses, Secret Manager faked.

The reference project is compiled with `[secrets] emulator_host` pointed at the in-suite gRPC fake
(and the Cloud Tasks adapter at the Cloud Tasks emulator); nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import grpc
import pytest

from tests.support.cli import compile_project, run_cli
from tests.support.env import ONEIRIC, PYTHON, free_port

from .sm_helpers import gcloud_env

_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
DSN = "postgresql://vectors:Pw-e2e-7Hq2@db.internal:5432/embeddings"

#: The guide's section 10 transcript of `health --probe --json` (last_update is a time, checked apart).
GUIDE_HEALTH = {
    "status": "healthy",
    "profile": {"name": "serverless", "watchers_enabled": False, "remote_enabled": False,
                "inline_manifest_only": True},
    "secrets": {"provider": "gcp.secret_manager", "status": "ready"},
    "lifecycle_state": {"activity_state": "accepting", "supervisor": {"enabled": True, "last_update": "<time>"}},
}


def guide_view(report: dict, shape: dict) -> dict:
    """`report` cut down to the keys of `shape`, in the report's own order; times become "<time>"."""
    view = {}
    for key in report:
        if key not in shape:
            continue
        value = report[key]
        if isinstance(shape[key], dict) and isinstance(value, dict):
            view[key] = guide_view(value, shape[key])
        elif isinstance(value, str) and _TIME.match(value):
            view[key] = "<time>"
        else:
            view[key] = value
    return view


def probe(project, tmp_path, *args, **env):
    # $ ONEIRIC_PROFILE=serverless uv run python -m oneiric.cli health --probe --json \
    #     --manifest build/serverless_manifest.json
    result = run_cli("health", "--probe", "--json", *args, cwd=project,
                     env=gcloud_env(tmp_path, ONEIRIC_PROFILE="serverless", **env))
    try:
        report = json.loads(result.stdout)  # stdout holds the JSON document and nothing else
    except ValueError:
        pytest.fail(f"health --probe --json printed no JSON (exit {result.returncode}):\n"
                    f"{result.stdout}\n{result.stderr}")
    return result, report


def test_serverless_profile_health_probe_transcript_ready(ref_project, sm, tmp_path):
    sm.put("pgvector-dsn", DSN)
    result, report = probe(ref_project, tmp_path, "--manifest", "build/serverless_manifest.json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(report)[:4] == ["status", "profile", "secrets", "lifecycle_state"]
    assert guide_view(report, GUIDE_HEALTH) == GUIDE_HEALTH
    assert list(report["secrets"])[:2] == ["provider", "status"]
    assert report["secrets"]["references"] == [
        {"name": "pgvector-dsn", "version": "latest", "resolved_version": "1", "status": "ready"}]
    assert report["adapters"]["adapter/secrets"]["status"] == "ready"
    assert sm.calls["AccessSecretVersion"] >= 1  # it really asked, over the wire
    assert f"projects/oneiric-demo/secrets/pgvector-dsn/versions/latest" in sm.access_log
    assert DSN not in result.stdout + result.stderr


def test_serverless_profile_health_probe_missing_secret_exits_1(ref_project, sm, tmp_path):
    result, report = probe(ref_project, tmp_path)
    assert result.returncode == 1
    assert report["status"] == "unhealthy"
    secrets = report["secrets"]
    assert (secrets["provider"], secrets["status"]) == ("gcp.secret_manager", "missing")
    assert secrets["missing"] == ["pgvector-dsn"]
    assert "pgvector-dsn" in secrets["detail"]


def test_serverless_profile_health_probe_permission_denied_is_error(ref_project, sm, tmp_path):
    sm.put("pgvector-dsn", DSN)
    sm.deny("pgvector-dsn")
    result, report = probe(ref_project, tmp_path)
    assert result.returncode == 1
    assert report["status"] == "unhealthy"
    assert report["secrets"]["status"] == "error"
    assert report["secrets"]["detail"].startswith("permission denied reading secret pgvector-dsn")
    assert "roles/secretmanager.secretAccessor" in report["secrets"]["detail"]
    assert DSN not in result.stdout + result.stderr


def test_serverless_profile_health_probe_unavailable_is_error(ref_project, sm, tmp_path):
    sm.put("pgvector-dsn", DSN)
    sm.fail(grpc.StatusCode.UNAVAILABLE)
    result, report = probe(ref_project, tmp_path)
    assert result.returncode == 1
    assert report["secrets"]["status"] == "error"
    assert report["secrets"]["detail"].startswith("unavailable")
    assert report["adapters"]["adapter/secrets"]["status"] == "error"


def test_serverless_profile_missing_credentials_fail_fast_and_clearly(ref_project, sm, tmp_path):
    """Without emulator_host the real client looks for ADC; none here, and no metadata-server stall."""
    sm.put("pgvector-dsn", DSN)
    started = time.monotonic()
    result, report = probe(ref_project, tmp_path, ONEIRIC_SECRETS__EMULATOR_HOST="")
    assert time.monotonic() - started < 10
    assert result.returncode == 1
    assert report["secrets"]["status"] == "error"
    detail = report["secrets"]["detail"]
    assert "Application Default Credentials" in detail and "roles/secretmanager.secretAccessor" in detail
    assert sm.calls["AccessSecretVersion"] == 0


# ---------------------------------------------------------------------- precedence

PROBE_MODULE = '''"""A third-party adapter that reports fingerprints of the settings it was built with."""
import hashlib

from runtime.adapters.base import Adapter, SecretValue


def fingerprint(value):
    if isinstance(value, SecretValue):
        return "secret:" + hashlib.sha256(value.reveal().encode()).hexdigest()[:16]
    return "plain:" + hashlib.sha256(str(value).encode()).hexdigest()[:16]


class Probe(Adapter):
    name = "probe"

    def health(self):
        s = self.settings
        return {"status": "ready", "detail": {"token": fingerprint(s.get("token")),
                                              "pinned": fingerprint(s.get("pinned")),
                                              "label": s.get("label"), "limit": s.get("limit")}}
'''

PROBE_ENTRY = '''
  - domain: adapter
    key: probe
    provider: probe
    factory: secretprobe:Probe
    settings_schema:
      type: object
      additionalProperties: false
      required: [token, pinned]
      properties:
        token: {type: string, pattern: "^secret://"}
        pinned: {type: string, pattern: "^secret://"}
        label: {type: string, default: from-schema}
        limit: {type: integer, default: 5}
'''

TOKEN_V1, TOKEN_V2, ENV_TOKEN = "probe-token-v1-Lk3", "probe-token-v2-Rw8", "token-from-env-Jd5"
TOKEN_VAR = "ONEIRIC_ADAPTERS_PROVIDER_SETTINGS_PROBE__TOKEN"


def fp(value: str, kind: str = "secret") -> str:
    import hashlib

    return f"{kind}:" + hashlib.sha256(value.encode()).hexdigest()[:16]


@pytest.fixture(scope="session")
def probe_compiled(reference_compiled, tmp_path_factory):
    """The reference project plus a `probe` adapter whose settings mix secret refs, file values and defaults."""
    import shutil

    import tomlkit

    project = tmp_path_factory.mktemp("secrets-precedence") / "project"
    shutil.copytree(reference_compiled, project, ignore=shutil.ignore_patterns(".oneiric_cache", "build"))
    (project / "config" / "default.toml").unlink()  # only the serverless profile matters here
    (project / "secretprobe.py").write_text(PROBE_MODULE, encoding="utf-8")
    manifest = project / "deployment" / "manifests" / "serverless.yaml"
    manifest.write_text(manifest.read_text(encoding="utf-8") + PROBE_ENTRY, encoding="utf-8")
    settings = project / "config" / "serverless.toml"
    doc = tomlkit.parse(settings.read_text(encoding="utf-8"))
    doc["adapters"]["selections"]["probe"] = "probe"
    doc["adapters"]["provider_settings"]["probe"] = {
        "token": "secret://probe-token", "pinned": "secret://probe-token@1", "label": "from-file"}
    doc["security"] = {"factory_allowlist": ["runtime.adapters", "oneiric.demo", "secretprobe"]}
    settings.write_text(tomlkit.dumps(doc), encoding="utf-8")
    compile_project(project, gcloud_env(tmp_path_factory.mktemp("gcloud")))
    return project


PRECEDENCE = [
    # (row, environment, expected probe settings, expected secrets provider)
    ("artifact: file values, schema default, secrets by reference", {},
     {"token": fp(TOKEN_V2), "pinned": fp(TOKEN_V1), "label": "from-file", "limit": 5}, "gcp.secret_manager"),
    ("env beats the artifact",
     {"ONEIRIC_ADAPTERS_PROVIDER_SETTINGS_PROBE__LABEL": "from-env",
      "ONEIRIC_ADAPTERS_PROVIDER_SETTINGS_PROBE__LIMIT": "9"},
     {"token": fp(TOKEN_V2), "pinned": fp(TOKEN_V1), "label": "from-env", "limit": 9}, "gcp.secret_manager"),
    ("a secret-bound key takes another secret reference from env",
     {TOKEN_VAR: "secret://probe-token@1"},
     {"token": fp(TOKEN_V1), "pinned": fp(TOKEN_V1), "label": "from-file", "limit": 5}, "gcp.secret_manager"),
    ("the env provider's variables mean nothing to Secret Manager",
     {"ONEIRIC_SECRET_PROBE_TOKEN": ENV_TOKEN},
     {"token": fp(TOKEN_V2), "pinned": fp(TOKEN_V1), "label": "from-file", "limit": 5}, "gcp.secret_manager"),
    ("local fallback: provider switched to env, the secret comes from ONEIRIC_SECRET_*",
     {"ONEIRIC_SECRETS__PROVIDER": "env", "ONEIRIC_SECRET_PROBE_TOKEN": ENV_TOKEN,
      "ONEIRIC_SECRET_PGVECTOR_DSN": DSN},
     {"token": fp(ENV_TOKEN), "pinned": fp(ENV_TOKEN), "label": "from-file", "limit": 5}, "env"),
]


@pytest.mark.parametrize("row, environ, expected, provider", PRECEDENCE, ids=[r[0] for r in PRECEDENCE])
def test_serverless_profile_precedence_table(probe_compiled, sm, tmp_path, row, environ, expected, provider):
    sm.put("pgvector-dsn", DSN)
    sm.put("probe-token", TOKEN_V1, TOKEN_V2)
    result, report = probe(probe_compiled, tmp_path, **environ)
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["secrets"]["provider"] == provider and report["secrets"]["status"] == "ready"
    assert report["adapters"]["adapter/probe"]["detail"] == expected
    output = result.stdout + result.stderr
    for value in (TOKEN_V1, TOKEN_V2, ENV_TOKEN, DSN):
        assert value not in output


def test_serverless_profile_literal_in_a_secret_bound_key_is_refused_unechoed(probe_compiled, sm, tmp_path):
    """A literal where a secret belongs is refused at start (exit 1) naming the variable, never the value."""
    sm.put("pgvector-dsn", DSN)
    result = run_cli("health", "--probe", "--json", cwd=probe_compiled,
                     env=gcloud_env(tmp_path, ONEIRIC_PROFILE="serverless", **{TOKEN_VAR: ENV_TOKEN}))
    assert result.returncode == 1, result.stdout + result.stderr
    assert TOKEN_VAR in result.stderr and "secret://" in result.stderr and "Traceback" not in result.stderr
    assert ENV_TOKEN not in result.stdout + result.stderr


def test_serverless_profile_secret_bound_keys_are_marked_in_the_artifact(probe_compiled):
    profile = json.loads((probe_compiled / "build" / "serverless_profile.json").read_text())
    keys = {k["name"]: k for k in profile["env_keys"]}
    assert keys[TOKEN_VAR]["secret_bound"] is True
    assert keys["ONEIRIC_ADAPTERS_PROVIDER_SETTINGS_PROBE__LABEL"]["secret_bound"] is False
    refs = {(s["name"], s["version"]) for s in profile["secrets"]}
    assert {("probe-token", "latest"), ("probe-token", "1"), ("pgvector-dsn", "latest")} <= refs


# ---------------------------------------------------------------------- redaction sweep


def orchestrate_briefly(project, tmp_path, **env):
    """`orchestrate --profile serverless --no-remote` until /healthz answers 200, one request, then SIGTERM."""
    import signal
    import subprocess
    import urllib.request

    port = free_port()
    argv = [PYTHON, "-m", "oneiric.cli", "orchestrate", "--profile", "serverless", "--no-remote",
            "--http-host", "127.0.0.1", "--http-port", str(port)]
    proc = subprocess.Popen(argv, cwd=project, env=gcloud_env(tmp_path, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    body, deadline = None, time.monotonic() + 20
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        body = resp.read().decode()
                        break
            except OSError:
                time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert body is not None, f"/healthz never answered 200:\n{out}\n{err}"
    return proc.returncode, body, out, err


def test_serverless_profile_redaction_sweep(probe_compiled, sm, tmp_path):
    """Compile and run with known secret values, then search every file written and all output for them."""
    import shutil

    project = tmp_path / "swept"
    shutil.copytree(probe_compiled, project, ignore=shutil.ignore_patterns(".oneiric_cache", "build"))
    sm.put("pgvector-dsn", DSN)
    sm.put("probe-token", TOKEN_V1, TOKEN_V2)
    env = gcloud_env(tmp_path)
    said: list[str] = []

    def cli(*args, expect=None, **extra):
        result = run_cli(*args, cwd=project, env=gcloud_env(tmp_path, ONEIRIC_PROFILE="serverless", **extra))
        said.extend([result.stdout, result.stderr])
        if expect is not None:
            assert result.returncode == expect, f"{args}: {result.stdout}\n{result.stderr}"
        return result

    compiled = subprocess.run([ONEIRIC, "compile", "--project-dir", str(project)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
    said += [compiled.stdout, compiled.stderr]
    assert compiled.returncode == 0, compiled.stderr

    def tool(*args):
        result = subprocess.run([ONEIRIC, *args, "--project-dir", str(project)], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=60)
        said.extend([result.stdout, result.stderr])
        assert result.returncode in (0, 1), result.stderr
        return result

    # independent runs at once, to keep the suite fast; the fake answers them all
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=6) as pool:
        jobs = [
            pool.submit(cli, "health", "--probe", "--json", expect=0),
            pool.submit(cli, "supervisor-info", "--json", expect=0),
            # an operator who tries to override a secret-bound key from the environment: refused, unechoed
            pool.submit(cli, "health", "--probe", "--json", expect=1, **{TOKEN_VAR: ENV_TOKEN}),
            pool.submit(orchestrate_briefly, project, tmp_path),
            pool.submit(tool, "explain", "adapters.provider_settings.probe.token", "--profile", "serverless"),
            pool.submit(tool, "report", "--probe", "--output", str(project / "notes.md")),
        ]
        results = [job.result() for job in jobs]
    assert json.loads(results[0].stdout)["secrets"]["status"] == "ready"
    code, body, out, err = results[3]
    said += [body, out, err]
    assert code == 0, out + err
    cli("health", "--json")  # reads the runtime_health.json the orchestrator left
    cli("activity", "--json", expect=0)
    # a failure path: its messages must not carry values either
    sm.deny("probe-token")
    failed = json.loads(cli("health", "--probe", "--json", expect=1).stdout)
    assert failed["secrets"]["status"] == "error" and "permission denied" in failed["secrets"]["detail"]

    files = [p for p in project.rglob("*") if p.is_file()]
    written = [p for p in files if p.suffix != ".py" and "__pycache__" not in p.parts]
    assert any(p.name == "runtime_health.json" for p in written)
    assert any(p.parent.name == "build" for p in written)
    blobs = [(str(p.relative_to(project)), p.read_bytes()) for p in files]
    blobs += [(f"output #{i}", text.encode()) for i, text in enumerate(said)]
    assert len(said) >= 16 and sum(len(b) for _, b in blobs) > 10_000  # the sweep saw real material
    assert not find_leaks(blobs, SWEPT_VALUES)


SWEPT_VALUES = (DSN, "Pw-e2e-7Hq2", TOKEN_V1, TOKEN_V2, ENV_TOKEN)


def find_leaks(blobs, values):
    """(where, value) for every blob holding a value, raw or base64-encoded."""
    import base64

    leaks = []
    for value in values:
        for form in (value.encode(), base64.b64encode(value.encode())):
            leaks += [(where, value) for where, blob in blobs if form in blob]
    return leaks


def test_the_sweep_finds_planted_values():
    import base64

    blobs = [("clean", b"nothing here"), ("raw", b'{"dsn": "' + DSN.encode() + b'"}'),
             ("b64", b"x" + base64.b64encode(TOKEN_V2.encode()) + b"y")]
    assert find_leaks(blobs, SWEPT_VALUES) == [("raw", DSN), ("raw", "Pw-e2e-7Hq2"), ("b64", TOKEN_V2)]


def test_serverless_profile_explain_never_echoes_an_env_value_for_a_secret_bound_key(probe_compiled, tmp_path):
    result = subprocess.run([ONEIRIC, "explain", "adapters.provider_settings.probe.token", "--profile", "serverless",
                             "--project-dir", str(probe_compiled)], cwd=tmp_path,
                            env=gcloud_env(tmp_path, **{TOKEN_VAR: ENV_TOKEN}), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert TOKEN_VAR in result.stdout and "refused at start" in result.stdout  # the chain names the variable
    assert ENV_TOKEN not in result.stdout + result.stderr


def test_serverless_profile_probe_fetches_every_reference_once_and_at_once(probe_compiled, sm, tmp_path):
    """Through the real runtime: all three references in flight together, none fetched twice."""
    sm.put("pgvector-dsn", DSN)
    sm.put("probe-token", TOKEN_V1, TOKEN_V2)
    sm.latency = 0.3
    result, report = probe(probe_compiled, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(sm.access_log) == [
        "projects/oneiric-demo/secrets/pgvector-dsn/versions/latest",
        "projects/oneiric-demo/secrets/probe-token/versions/1",
        "projects/oneiric-demo/secrets/probe-token/versions/latest",
    ]
    assert sm.max_inflight == 3
    prefetch = next(json.loads(line) for line in result.stderr.splitlines() if "secrets prefetched" in line)
    assert prefetch["message"] == "secrets prefetched: 3 of 3 resolved"
    assert prefetch["elapsed_ms"] < 2 * 300
