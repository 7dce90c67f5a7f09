"""`oneiric schema`, the editor schema hints, and the pre-commit hooks run in a throwaway git repo.

The `pre-commit` tool itself is not a dependency: `run_hook` does what
pre-commit does for a hook from .pre-commit-hooks.yaml (take the staged files,
filter them by `files`/`exclude`, run `entry` + `args` + the file names, or no
names with `pass_filenames: false`, and fail on a non-zero exit), with the
installed `oneiric` console script on PATH as `language: python` provides it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from runtime.about import SCHEMA_DIR
from tests.support.cli import cli_in_process
from tests.support.env import ROOT, clean_env
from tests.support.projects import clone

from .helpers import MANIFEST, SETTINGS, audit_project, commit_all, git, git_init

HOOKS = {hook["id"]: hook for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}


def test_schema_list_print_and_export(tmp_path: Path):
    listing = cli_in_process("schema")
    assert listing.returncode == 0
    assert re.search(r"^settings +settings\.schema\.json$", listing.stdout, re.M)
    printed = cli_in_process("schema", "settings")
    assert printed.stdout == (SCHEMA_DIR / "settings.schema.json").read_text()
    result = cli_in_process("schema", "--output", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    expected = sorted(p.relative_to(SCHEMA_DIR).as_posix() for p in SCHEMA_DIR.rglob("*.json"))
    got = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.json"))
    assert got == expected and "providers/env.json" in got
    for rel in expected:
        assert (tmp_path / "out" / rel).read_bytes() == (SCHEMA_DIR / rel).read_bytes()
        json.loads((tmp_path / "out" / rel).read_text())
    unknown = cli_in_process("schema", "setings")
    assert unknown.returncode == 2 and "unknown schema 'setings'" in unknown.stderr


@pytest.mark.parametrize("path, pattern", [
    ("config/serverless.toml", r"^#:schema (\S+)$"),
    ("config/default.toml", r"^#:schema (\S+)$"),
    ("deployment/manifests/serverless.yaml", r"^# yaml-language-server: \$schema=(\S+)$"),
])
def test_reference_files_carry_editor_schema_hints(path: str, pattern: str):
    first = (ROOT / path).read_text().splitlines()[0]
    match = re.match(pattern, first)
    assert match, first
    target = ((ROOT / path).parent / match.group(1)).resolve()
    assert target.parent == SCHEMA_DIR and target.is_file()


# ---------------------------------------------------------------- pre-commit hooks

def test_hook_definitions():
    assert set(HOOKS) == {"oneiric-validate", "oneiric-compile-check"}
    for hook in HOOKS.values():
        assert {"id", "name", "entry", "language"} <= set(hook)
        assert hook["language"] == "python"
        assert shlex.split(hook["entry"])[0] == "oneiric"
        re.compile(hook["files"])
    assert HOOKS["oneiric-compile-check"]["pass_filenames"] is False


def run_hook(repo: Path, hook_id: str) -> subprocess.CompletedProcess:
    """Run one hook the way `pre-commit run <id>` does on the staged files."""
    hook = HOOKS[hook_id]
    staged = git(repo, "diff", "--cached", "--name-only", "--diff-filter=ACMR").split()
    files = [f for f in staged if re.search(hook.get("files", ""), f)
             and not (hook.get("exclude") and re.search(hook["exclude"], f))]
    if not files and not hook.get("always_run"):
        return subprocess.CompletedProcess([], 0, "(no files to check) Skipped", "")
    cmd = shlex.split(hook["entry"]) + list(hook.get("args", []))
    if hook.get("pass_filenames", True):
        cmd += files
    env = clean_env(PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def repo_once(tmp_path_factory) -> Path:
    root = audit_project(tmp_path_factory.mktemp("hooks") / "consumer")
    assert cli_in_process("compile", cwd=root).returncode == 0
    git_init(root)
    commit_all(root, "initial")
    return root


@pytest.fixture
def repo(repo_once: Path, tmp_path: Path) -> Path:
    return clone(repo_once, tmp_path / "consumer")


def stage(repo: Path) -> None:
    git(repo, "add", "-A")


def test_hooks_pass_on_a_clean_change(repo: Path):
    manifest = repo / "deployment" / "manifests" / "app.yaml"
    manifest.write_text(MANIFEST.replace("default: 8", "default: 16"))
    assert cli_in_process("compile", cwd=repo).returncode == 0
    stage(repo)
    for hook_id in HOOKS:
        result = run_hook(repo, hook_id)
        assert result.returncode == 0, (hook_id, result.stdout, result.stderr)
    assert "ok: 1 file(s) valid" in run_hook(repo, "oneiric-validate").stdout


def test_validate_hook_fails_with_positions(repo: Path):
    (repo / "deployment" / "manifests" / "app.yaml").write_text(MANIFEST.replace("    provider: demo\n",
                                                                                 "    provier: demo\n", 1))
    stage(repo)
    result = run_hook(repo, "oneiric-validate")
    assert result.returncode == 1
    assert "deployment/manifests/app.yaml:13:5: error:" in result.stderr
    assert "did you mean 'provider'?" in result.stderr


def test_compile_check_hook_fails_on_stale_build(repo: Path):
    (repo / "config" / "serverless.toml").write_text(SETTINGS.replace("8080", "8081"))
    stage(repo)
    assert run_hook(repo, "oneiric-validate").returncode == 0
    result = run_hook(repo, "oneiric-compile-check")
    assert result.returncode == 1
    assert "build/serverless_profile.json is stale: run oneiric compile" in result.stderr


def test_hooks_skip_unrelated_files(repo: Path):
    (repo / "README.md").write_text("hello\n")
    stage(repo)
    for hook_id in HOOKS:
        assert run_hook(repo, hook_id).stdout == "(no files to check) Skipped"


@pytest.mark.skipif(subprocess.run(["sh", "-c", "command -v pre-commit"], capture_output=True).returncode != 0,
                    reason="the pre-commit tool is not installed; run_hook above emulates it")
def test_pre_commit_validates_the_hook_manifest():
    result = subprocess.run(["pre-commit", "validate-manifest", str(ROOT / ".pre-commit-hooks.yaml")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
