"""`oneiric manifest diff` (real subprocesses): exit codes, identity matching, provenance, REV:PATH via git."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from runtime.canonical import compute_digest, pretty_bytes
from tests.support.cli import cli_in_process, run_cli
from tests.support.projects import clone

from .helpers import MANIFEST, SETTINGS, audit_project, commit_all, git_init, load, stable


def compile_to(root: Path, out: str) -> None:
    result = cli_in_process("compile", "--out", out, cwd=root)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    root = audit_project(tmp_path_factory.mktemp("diff") / "proj")
    compile_to(root, "old")
    return root


@pytest.fixture
def project(compiled: Path, tmp_path: Path) -> Path:
    return clone(compiled, tmp_path / "proj")


def test_same_artifacts_exit_0(project: Path, snapshot):
    compile_to(project, "new")
    result = cli_in_process("manifest", "diff", "old/serverless_profile.json", "new/serverless_profile.json",
                            cwd=project)
    assert result.returncode == 0, result.stderr
    assert stable(result.stdout) == snapshot


def test_changed_toml_line_reported_with_its_location(project: Path, snapshot):
    settings = project / "config" / "serverless.toml"
    settings.write_text(SETTINGS.replace("port = 8080", "port = 9090"), encoding="utf-8")
    compile_to(project, "new")
    result = cli_in_process("manifest", "diff", "old/serverless_profile.json", "new/serverless_profile.json",
                            cwd=project)
    assert result.returncode == 1, result.stderr
    assert "~ $.settings.http.port: 8080 -> 9090\n    at config/serverless.toml:12:1\n" in result.stdout
    assert stable(result.stdout) == snapshot
    as_json = cli_in_process("manifest", "diff", "--json", "old/serverless_profile.json", "new/serverless_profile.json",
                             cwd=project)
    assert as_json.returncode == 1
    data = json.loads(as_json.stdout)
    port = [c for c in data["changes"] if c["path"] == "$.settings.http.port"]
    assert port == [{"op": "changed", "path": "$.settings.http.port", "old": 8080, "new": 9090, "moved": False,
                     "old_provenance": "config/serverless.toml:12:1",
                     "new_provenance": "config/serverless.toml:12:1"}]
    assert data["kind"] == "profile" and data["same"] is False
    assert stable(as_json.stdout) == snapshot(name="json")


def test_value_from_schema_default_to_file_shows_both_provenances(project: Path):
    settings = project / "config" / "serverless.toml"
    settings.write_text(SETTINGS + '\n[logging]\nlevel = "DEBUG"\n', encoding="utf-8")
    compile_to(project, "new")
    result = cli_in_process("manifest", "diff", "old/serverless_profile.json", "new/serverless_profile.json",
                            cwd=project)
    assert result.returncode == 1
    assert ('~ $.settings.logging.level: "INFO" -> "DEBUG"\n'
            "    old: schema default\n"
            "    new: config/serverless.toml:17:1\n") in result.stdout


def test_moved_line_is_a_provenance_only_change(project: Path):
    settings = project / "config" / "serverless.toml"
    settings.write_text(SETTINGS.replace("[http]\n", "[http]\n# a comment pushes the lines down\n"),
                        encoding="utf-8")
    compile_to(project, "new")
    result = cli_in_process("manifest", "diff", "old/serverless_profile.json", "new/serverless_profile.json",
                            cwd=project)
    assert result.returncode == 1
    assert ("~ $.settings.http.port: value unchanged, set at config/serverless.toml:12:1 -> "
            "config/serverless.toml:13:1") in result.stdout


def test_added_and_removed_entries_by_identity(project: Path, snapshot):
    manifest = MANIFEST.replace("    key: load\n    provider: demo\n", "    key: load\n    provider: other\n")
    manifest += "  - domain: task\n    key: transform\n    provider: demo\n    factory: oneiric.demo.tasks:transform\n"
    (project / "deployment" / "manifests" / "app.yaml").write_text(manifest, encoding="utf-8")
    compile_to(project, "new")
    result = cli_in_process("manifest", "diff", "old/serverless_manifest.json", "new/serverless_manifest.json",
                            cwd=project)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert "- $.entries[task/load/demo]: factory oneiric.demo.tasks:load, provider demo" in lines
    assert any(line.startswith("+ $.entries[task/load/other]") for line in lines)
    assert any(line.startswith("+ $.entries[task/transform/demo]") for line in lines)
    assert stable(result.stdout) == snapshot


def test_reordered_entries_are_not_a_change(project: Path, tmp_path: Path):
    data = load(project / "old" / "serverless_manifest.json")
    shuffled = dict(data, entries=list(reversed(data["entries"])))
    random.Random(4).shuffle(shuffled["entries"])
    assert shuffled["entries"] != data["entries"]
    shuffled["digest"] = compute_digest(shuffled)
    (tmp_path / "shuffled.json").write_bytes(pretty_bytes(shuffled))
    result = cli_in_process("manifest", "diff", str(project / "old" / "serverless_manifest.json"),
                            str(tmp_path / "shuffled.json"))
    assert result.returncode == 0, result.stdout
    assert "no differences" in result.stdout


def test_reordered_yaml_only_moves_sources(project: Path):
    head, _, rest = MANIFEST.partition("entries:\n")
    blocks = [b for b in re.split(r"(?m)^(?=  - domain)", rest) if b]
    assert len(blocks) == 4
    (project / "deployment" / "manifests" / "app.yaml").write_text(head + "entries:\n" + "".join(reversed(blocks)),
                                                                   encoding="utf-8")
    compile_to(project, "new")
    result = cli_in_process("manifest", "diff", "--json", "old/serverless_manifest.json",
                            "new/serverless_manifest.json", cwd=project)
    changes = json.loads(result.stdout)["changes"]
    # the same four entries; only where each one starts in the YAML (and the file hash) moved
    assert {c["op"] for c in changes} == {"changed"}
    assert {c["path"].rsplit(".", 1)[-1] for c in changes} == {"source", "sha256"}


def test_rev_path_through_git(project: Path):
    compile_to(project, "build")
    git_init(project)
    commit_all(project, "first build")
    settings = project / "config" / "serverless.toml"
    settings.write_text(SETTINGS.replace('provider = "env"', 'provider = "file"\ndirectory = "/run/secrets"'),
                        encoding="utf-8")
    compile_to(project, "build")
    result = run_cli("manifest", "diff", "HEAD:build/serverless_profile.json", "build/serverless_profile.json",
                     cwd=project)
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("--- HEAD:build/serverless_profile.json (sha256:")
    assert '~ $.settings.secrets.provider: "env" -> "file"\n    at config/serverless.toml:5:1\n' in result.stdout
    assert ("- $.selections[adapter/secrets/env]: factory runtime.adapters.secrets_env:EnvSecrets, provider env, "
            "origin builtin") in result.stdout
    assert "+ $.selections[adapter/secrets/file]: " in result.stdout
    assert ("~ $.settings.http.port: value unchanged, set at config/serverless.toml:12:1 -> "
            "config/serverless.toml:13:1") in result.stdout
    commit_all(project, "file secrets")
    same = run_cli("manifest", "diff", "HEAD~1:build/serverless_manifest.json", "HEAD:build/serverless_manifest.json",
                   cwd=project)
    assert same.returncode == 0, same.stdout + same.stderr


@pytest.mark.parametrize("args, message", [
    (("old/serverless_profile.json", "old/serverless_manifest.json"), "cannot compare a profile artifact"),
    (("old/serverless_profile.json", "old/missing.json"), "old/missing.json: no such file"),
    (("old/serverless_profile.json", "config/serverless.toml"), "config/serverless.toml: not JSON"),
    (("old/serverless_profile.json", "nosuchrev:build/x.json"), "git show failed"),
])
def test_usage_errors_exit_2(project: Path, args, message):
    result = cli_in_process("manifest", "diff", *args, cwd=project)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert result.stdout == ""


def test_unknown_format_exit_2(project: Path):
    (project / "other.json").write_text('{"format": "something/1"}\n')
    result = cli_in_process("manifest", "diff", "other.json", "old/serverless_manifest.json", cwd=project)
    assert result.returncode == 2
    assert "unknown artifact format 'something/1'" in result.stderr
