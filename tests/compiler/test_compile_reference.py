"""The reference project compiles to the committed, byte-reproducible artifacts; the CLI verbs around it.

The reference compile, usage errors, the routing of runtime verbs and `--config` run the real command line
as a subprocess; the other cases call it in process (tests.support.cli.cli_in_process)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from runtime.canonical import compute_digest
from tests.compiler.inputs import BASE_MANIFEST
from tests.support.cli import cli_in_process, run_cli
from tests.support.env import ROOT
from tests.support.projects import copy_reference, write_project


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    root = copy_reference(tmp_path_factory.mktemp("ref"))
    result = run_cli("compile", "--project-dir", str(root), cwd=root)
    assert result.returncode == 0, result.stderr
    return root / "build"


@pytest.mark.parametrize("name", ["serverless_manifest.json", "serverless_profile.json",
                                  "default_manifest.json", "default_profile.json"])
def test_reference_artifacts_snapshot(compiled: Path, name: str, snapshot):
    data = json.loads((compiled / name).read_text())
    assert data == snapshot


def test_committed_build_matches_a_fresh_compile(compiled: Path):
    for path in compiled.iterdir():
        assert path.read_bytes() == (ROOT / "build" / path.name).read_bytes(), path.name


def test_two_directories_give_identical_bytes(tmp_path: Path, compiled: Path):
    other = copy_reference(tmp_path / "somewhere" / "else entirely")
    result = cli_in_process("compile", "--project-dir", str(other), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for path in compiled.iterdir():
        assert (other / "build" / path.name).read_bytes() == path.read_bytes()
        assert str(tmp_path) not in path.read_text()


def test_artifacts_are_canonical_and_self_verifying(compiled: Path):
    for path in compiled.iterdir():
        raw = path.read_bytes()
        data = json.loads(raw)
        assert raw == (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()
        assert data["digest"] == compute_digest(data)
    profile = json.loads((compiled / "serverless_profile.json").read_text())
    manifest = json.loads((compiled / "serverless_manifest.json").read_text())
    assert profile["manifest"] == {"path": "serverless_manifest.json", "digest": manifest["digest"]}
    settings = (compiled.parent / "config" / "serverless.toml").read_bytes()
    assert {"kind": "settings", "path": "config/serverless.toml",
            "sha256": hashlib.sha256(settings).hexdigest()} in profile["inputs"]


def test_serverless_profile_resolves_the_guides_sample(compiled: Path):
    profile = json.loads((compiled / "serverless_profile.json").read_text())
    assert profile["profile"]["toggles"] == {"watchers_enabled": False, "remote_enabled": False,
                                             "inline_manifest_only": True, "supervisor_enabled": True}
    assert profile["settings"]["secrets"]["provider"] == "gcp.secret_manager"
    chosen = {(s["domain"], s["key"]): s for s in profile["selections"]}
    assert chosen[("adapter", "queue")]["provider"] == "cloudtasks"
    assert chosen[("adapter", "secrets")]["provider"] == "gcp.secret_manager"
    assert chosen[("adapter", "vector")]["provider"] == "pgvector"
    assert profile["settings"]["workflows"]["options"]["queue_category"] == "queue.scheduler"
    assert profile["provenance"]["runtime.supervisor.enabled"] == "profile:serverless"
    assert profile["provenance"]["secrets.provider"] == "config/serverless.toml:8:1"
    assert profile["provenance"]["http.port"] == "schema default"
    # secret references stay references and are listed
    assert profile["settings"]["adapters"]["provider_settings"]["pgvector"]["dsn"] == "secret://pgvector-dsn"
    assert [s["ref"] for s in profile["secrets"]] == ["secret://pgvector-dsn"]
    env = {k["name"]: k for k in profile["env_keys"]}
    assert env["ONEIRIC_RUNTIME_SUPERVISOR__ENABLED"]["type"] == "boolean"
    assert env["ONEIRIC_ADAPTERS_PROVIDER_SETTINGS_PGVECTOR__DSN"]["secret_bound"] is True


def test_default_profile_selects_embedded_defaults_only(compiled: Path):
    profile = json.loads((compiled / "default_profile.json").read_text())
    chosen = {(s["domain"], s["key"]): s["provider"] for s in profile["selections"]}
    assert chosen[("adapter", "secrets")] == "env"
    assert chosen[("adapter", "queue")] == "local"
    assert chosen[("adapter", "vector")] == "memory"
    assert profile["profile"]["toggles"]["watchers_enabled"] is True


def test_check_detects_a_stale_build(tmp_path: Path):
    root = copy_reference(tmp_path / "p")
    assert cli_in_process("compile", "--project-dir", str(root)).returncode == 0
    ok = cli_in_process("compile", "--project-dir", str(root), "--check")
    assert ok.returncode == 0, ok.stderr
    settings = root / "config" / "serverless.toml"
    settings.write_text(settings.read_text().replace("cache_ttl_seconds = 300", "cache_ttl_seconds = 60"))
    before = (root / "build" / "serverless_profile.json").read_bytes()
    stale = cli_in_process("compile", "--project-dir", str(root), "--check")
    assert stale.returncode == 1
    assert "serverless_profile.json is stale: run oneiric compile" in stale.stderr
    assert (root / "build" / "serverless_profile.json").read_bytes() == before  # --check writes nothing


def test_failed_compile_leaves_build_byte_identical(tmp_path: Path):
    root = copy_reference(tmp_path / "p")
    assert cli_in_process("compile", "--project-dir", str(root)).returncode == 0
    before = {p.name: p.read_bytes() for p in (root / "build").iterdir()}
    settings = root / "config" / "default.toml"
    settings.write_text(settings.read_text() + "\n[htpp]\nport = 1\n")
    result = cli_in_process("compile", "--project-dir", str(root))
    assert result.returncode == 1
    assert {p.name: p.read_bytes() for p in (root / "build").iterdir()} == before


def test_unwritable_output_gives_clear_error_and_writes_nothing(tmp_path: Path):
    root = copy_reference(tmp_path / "p")
    blocker = tmp_path / "out"
    blocker.write_text("a file where the output directory should be\n")
    result = cli_in_process("compile", "--project-dir", str(root), "--out", str(blocker / "build"))
    assert result.returncode == 1
    assert "nothing was written" in result.stderr
    assert blocker.read_text() == "a file where the output directory should be\n"
    assert not list(tmp_path.rglob("*.tmp"))


def test_profile_option_compiles_only_that_profile(tmp_path: Path):
    root = copy_reference(tmp_path / "p")
    result = cli_in_process("compile", "--project-dir", str(root), "--profile", "serverless")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (root / "build").iterdir()) == ["serverless_manifest.json", "serverless_profile.json"]


def test_custom_profile_extends_serverless(tmp_path: Path):
    root = write_project(tmp_path / "p", BASE_MANIFEST, '[profile]\nname = "staging"\n\n[profiles.staging]\n'
                         'extends = "serverless"\nsupervisor_enabled = false\n\n[http]\ntasks_auth = "hmac"\n'
                         'hmac_key = "secret://k"\n', profile="staging")
    result = cli_in_process("compile", "--project-dir", str(root))
    assert result.returncode == 0, result.stderr
    profile = json.loads((root / "build" / "staging_profile.json").read_text())
    assert profile["profile"]["base"] == "serverless"
    assert profile["profile"]["toggles"]["supervisor_enabled"] is False
    assert profile["profile"]["toggles"]["watchers_enabled"] is False
    assert profile["settings"]["runtime"]["supervisor"]["enabled"] is False


def test_manifest_pack_matches_the_guides_command(tmp_path: Path):
    root = copy_reference(tmp_path / "p")
    result = cli_in_process("manifest", "pack", "--input", "deployment/manifests/serverless.yaml",
                            "--output", "build/serverless_manifest.json", cwd=root)
    assert result.returncode == 0, result.stderr
    packed = json.loads((root / "build" / "serverless_manifest.json").read_text())
    assert packed["format"] == "oneiric.manifest/1"
    assert packed["digest"] == compute_digest(packed)
    assert [(e["domain"], e["key"], e["provider"]) for e in packed["entries"]] == sorted(
        (e["domain"], e["key"], e["provider"]) for e in packed["entries"])
    # the same bytes compile writes for the serverless profile
    packed = (root / "build" / "serverless_manifest.json").read_bytes()
    assert packed == (ROOT / "build" / "serverless_manifest.json").read_bytes()


def test_manifest_validate_reports_every_file(tmp_path: Path):
    good = cli_in_process("manifest", "validate", "deployment/manifests/serverless.yaml", "config/serverless.toml",
                          cwd=ROOT)
    assert good.returncode == 0, good.stderr
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("source: x\nentries:\n  - domain: task\n    key: k\n")
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[http]\nprot = 1\n")
    result = cli_in_process("manifest", "validate", "bad.yaml", "bad.toml", cwd=tmp_path)
    assert result.returncode == 1
    assert "bad.toml:2:1: error: $.http.prot: unknown key 'prot' (did you mean 'port'?)" in result.stderr
    assert "bad.yaml:3:5: error: $.entries[0]: missing required key 'factory'" in result.stderr


def test_explain_shows_every_layer_winner_last(tmp_path: Path):
    root = copy_reference(tmp_path / "p")
    result = cli_in_process("explain", "runtime.supervisor.enabled", "--profile", "serverless",
                            "--project-dir", str(root), "--json", env={"ONEIRIC_RUNTIME_SUPERVISOR__ENABLED": "false"})
    assert result.returncode == 0, result.stderr
    layers = json.loads(result.stdout)
    assert [l["layer"] for l in layers] == ["profile:serverless", "environment"]
    assert layers[-1]["value"] == "false"
    dsn = cli_in_process("explain", "adapters.provider_settings.pgvector.dsn", "--profile", "serverless",
                         "--project-dir", str(root), "--json",
                         env={"ONEIRIC_ADAPTERS_PROVIDER_SETTINGS_PGVECTOR__DSN": "postgresql://x"})
    chain = json.loads(dsn.stdout)
    assert [l["layer"].split(":")[0] for l in chain] == ["settings file", "environment (refused at start", "secret"]
    assert "ONEIRIC_ADAPTERS_PROVIDER_SETTINGS_PGVECTOR__DSN" in chain[1]["layer"] and "secret://" in chain[1]["layer"]
    assert chain[1]["value"] == "<redacted>" and "postgresql://x" not in dsn.stdout
    assert chain[0]["origin"] == "config/serverless.toml:21:1"
    port = json.loads(cli_in_process("explain", "http.port", "--project-dir", str(root), "--json").stdout)
    assert port == [{"layer": "schema default", "value": 8080, "origin": "schemas/settings.schema.json"}]


def test_config_naming_a_profile_artifact_finds_its_project_like_the_runtime(tmp_path: Path):
    """`--config build/x_profile.json` means the project above build/, for the compiler as for the runtime."""
    root = copy_reference(tmp_path / "p")
    assert cli_in_process("compile", cwd=root).returncode == 0
    artifact = root / "build" / "serverless_profile.json"
    check = run_cli("--config", str(artifact), "compile", "--check", "--profile", "serverless", cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert "p/build/serverless_profile.json" in check.stdout
    info = run_cli("--config", str(artifact), "supervisor-info", "--json", cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["profile_digest"] == json.loads(artifact.read_bytes())["digest"]


def test_usage_errors_exit_2():
    assert run_cli("compile", "--no-such-flag").returncode == 2
    assert run_cli("manifest", "pack", "--output", "x.json").returncode == 2


def test_runtime_verbs_are_routed_without_loading_compiler_libraries():
    import subprocess
    import sys

    code = ("import sys\nfrom oneiric import cli\n"
            "try:\n    cli.main(['supervisor-info', '--help'])\nexcept SystemExit:\n    pass\n"
            "bad = sorted(m for m in ('click', 'yaml', 'jsonschema', 'jinja2', 'tomlkit', 'tomli', 'cattrs', 'orjson', 'compiler')"
            " if m in sys.modules)\nprint('LOADED', bad)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert "LOADED []" in result.stdout, result.stdout + result.stderr
    from oneiric.cli import find_verb

    assert find_verb(["--profile", "serverless", "health", "--probe"]) == "health"
    assert find_verb(["--config", "x.toml", "compile"]) == "compile"


@pytest.mark.parametrize("kind", ["manifest", "profile"])
def test_artifacts_validate_against_their_published_schemas(compiled: Path, kind: str):
    from compiler.schema import named_validator

    validator = named_validator(f"{kind}-artifact.schema.json")
    for path in sorted(compiled.glob(f"*_{kind}.json")):
        errors = [e.message for e in validator.iter_errors(json.loads(path.read_text()))]
        assert errors == [], path.name


def test_every_schema_is_draft_2020_12_with_an_id():
    from jsonschema import Draft202012Validator

    from runtime.about import SCHEMA_DIR

    files = sorted(SCHEMA_DIR.rglob("*.json"))
    assert len(files) >= 9
    for path in files:
        schema = json.loads(path.read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", path.name
        assert schema["$id"].endswith(path.name), path.name
        Draft202012Validator.check_schema(schema)


def test_oidc_audience_must_match_what_cloud_tasks_signs(tmp_path: Path):
    root = copy_reference(tmp_path / "p")
    settings = root / "config" / "serverless.toml"
    text = settings.read_text()
    settings.write_text(text.replace('oidc_audience = "https://oneiric-runtime-xxxxxxxx-uc.a.run.app/tasks/workflow"',
                                     'oidc_audience = "https://elsewhere.example/tasks/workflow"'))
    result = cli_in_process("compile", "--project-dir", str(root), "--profile", "serverless", "--format", "json")
    assert result.returncode == 1
    [finding] = json.loads(result.stdout)
    assert (finding["rule"], finding["file"], finding["line"]) == ("auth.queue", "config/serverless.toml", 32)
    assert "elsewhere.example" in finding["message"]
