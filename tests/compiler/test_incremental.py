"""Incremental `compile` / `compile --check`: nothing is built when nothing changed, and a change to any
input of the build (inputs, a factory's source, the compiler, an artifact) is never a stale pass."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.compiler.inputs import BASE_MANIFEST, BASE_SETTINGS
from tests.support.cli import run_cli
from tests.support.env import clean_env
from tests.support.projects import write_project

SKIPPED = "(unchanged since the last compile)"
STAGING = ('[profile]\nname = "staging"\n\n[profiles.staging]\nextends = "default"\n\n[http]\ntasks_auth = "none"\n'
           '\n[security]\nfactory_allowlist = ["acme_jobs", "oneiric.demo"]\n')


FACTORY = '''
def extract(payload, context, inputs):
    return {"ok": True}


def load(payload, context, inputs):
    return {"ok": True}
'''


@pytest.fixture
def compiled(tmp_path: Path) -> tuple[Path, dict]:
    """A project whose task factories live in a project-local module (on PYTHONPATH), compiled once."""
    pylib = tmp_path / "pylib"
    pylib.mkdir()
    (pylib / "acme_jobs.py").write_text(FACTORY)
    project = write_project(tmp_path / "proj", BASE_MANIFEST.replace("oneiric.demo.tasks:", "acme_jobs:"),
                            BASE_SETTINGS + '\n[security]\nfactory_allowlist = ["acme_jobs", "oneiric.demo"]\n')
    env = clean_env(PYTHONPATH=os.pathsep.join(filter(None, [str(pylib), os.environ.get("PYTHONPATH")])))
    first = run_cli("compile", "--project-dir", str(project), env=env)
    assert first.returncode == 0, first.stderr
    assert "wrote" in first.stdout
    return project, env


def _check(project: Path, env: dict):
    return run_cli("compile", "--check", "--project-dir", str(project), env=env)


def test_unchanged_project_is_not_built_again(compiled):
    project, env = compiled
    check = _check(project, env)
    assert check.returncode == 0 and SKIPPED in check.stdout, check.stdout + check.stderr
    again = run_cli("compile", "--project-dir", str(project), env=env)
    assert again.returncode == 0 and again.stdout.startswith("unchanged ") and "wrote" not in again.stdout
    digests = {json.loads(p.read_text())["digest"] for p in (project / "build").glob("*.json")}
    assert {line.rsplit("(", 1)[1].rstrip(")") for line in again.stdout.splitlines()} == digests


def test_force_builds_anyway(compiled):
    project, env = compiled
    forced = run_cli("compile", "--force", "--project-dir", str(project), env=env)
    assert forced.returncode == 0 and "wrote" in forced.stdout
    forced_check = run_cli("compile", "--check", "--force", "--project-dir", str(project), env=env)
    assert forced_check.returncode == 0 and "up to date" in forced_check.stdout
    assert SKIPPED not in forced_check.stdout


@pytest.mark.parametrize("change", ["manifest", "settings", "new-settings-file", "removed-settings-file"])
def test_a_changed_input_is_stale_then_rebuilt(compiled, change):
    project, env = compiled
    manifest = project / "deployment" / "manifests" / "app.yaml"
    settings = project / "config" / "default.toml"
    if change == "manifest":
        manifest.write_text(manifest.read_text().replace("key: extract", "key: extract2").replace(
            "task: extract", "task: extract2"))
    elif change == "settings":
        settings.write_text(settings.read_text() + "\n[logging]\nformat = \"text\"\n")
    elif change == "new-settings-file":
        (project / "config" / "staging.toml").write_text(STAGING)
    else:
        (project / "config" / "staging.toml").write_text(STAGING)
        assert run_cli("compile", "--project-dir", str(project), env=env).returncode == 0
        (project / "config" / "staging.toml").unlink()
        # the staging artifacts stay on disk, but the default ones are what this request writes: a rebuild
        rebuilt = run_cli("compile", "--project-dir", str(project), env=env)
        assert rebuilt.returncode == 0 and "wrote" in rebuilt.stdout, rebuilt.stdout
        return
    check = _check(project, env)
    assert check.returncode == 1 and "is stale: run oneiric compile" in check.stderr, check.stdout + check.stderr
    rebuilt = run_cli("compile", "--project-dir", str(project), env=env)
    assert rebuilt.returncode == 0 and "wrote" in rebuilt.stdout
    assert SKIPPED in _check(project, env).stdout


def test_a_changed_factory_module_is_checked_again(compiled):
    project, env = compiled
    pylib = Path(env["PYTHONPATH"].split(os.pathsep)[0])
    (pylib / "acme_jobs.py").write_text(FACTORY.replace("def extract", "def extracted"))
    check = _check(project, env)
    assert check.returncode == 1, check.stdout
    assert "factory.not-defined" in check.stderr or "is not defined in acme_jobs" in check.stderr
    (pylib / "acme_jobs.py").write_text(FACTORY + "\n# a comment changes the source, not the artifacts\n")
    check = _check(project, env)
    assert check.returncode == 0 and "up to date" in check.stdout and SKIPPED not in check.stdout  # built


@pytest.mark.parametrize("damage", ["edited", "deleted"])
def test_a_changed_artifact_is_stale_then_rewritten(compiled, damage):
    project, env = compiled
    artifact = project / "build" / "default_profile.json"
    if damage == "edited":
        artifact.write_text(artifact.read_text().replace('"default"', '"d3fault"', 1))
    else:
        artifact.unlink()
    check = _check(project, env)
    assert check.returncode == 1 and "build/default_profile.json is stale" in check.stderr.replace("\\", "/")
    rebuilt = run_cli("compile", "--project-dir", str(project), env=env)
    assert rebuilt.returncode == 0 and "wrote" in rebuilt.stdout
    assert SKIPPED in _check(project, env).stdout


def test_a_changed_compiler_is_built_again(compiled, monkeypatch):
    """The compiler's own files cannot change under a test; its fingerprint can (what a new version does)."""
    from compiler import incremental
    from compiler.cli import cli

    project, env = compiled
    monkeypatch.syspath_prepend(env["PYTHONPATH"].split(os.pathsep)[0])
    runner = CliRunner()
    same = runner.invoke(cli, ["compile", "--check", "--project-dir", str(project)], obj={})
    assert same.exit_code == 0 and SKIPPED in same.output, same.output
    real = incremental.compiler_fingerprint
    monkeypatch.setattr(incremental, "compiler_fingerprint", lambda: "another compiler " + real())
    rebuilt = runner.invoke(cli, ["compile", "--check", "--project-dir", str(project)], obj={})
    assert rebuilt.exit_code == 0 and "up to date" in rebuilt.output and SKIPPED not in rebuilt.output


def test_compiler_fingerprint_covers_code_schemas_and_templates():
    from compiler import incremental

    base = Path(incremental.__file__).resolve().parents[1]
    covered = {p.relative_to(base).as_posix() for package in incremental._OWN_PACKAGES
               for p in (base / package).rglob("*") if p.suffix in incremental._OWN_SUFFIXES}
    assert {"compiler/build.py", "runtime/model.py", "runtime/canonical.py",
            "schemas/settings.schema.json"} <= covered
    assert any(name.startswith("compiler/templates/") for name in covered)


@pytest.mark.parametrize("edited", ["manifest", "factory"])
def test_a_file_edited_while_the_build_runs_is_not_taken_as_built(compiled, monkeypatch, edited):
    """The stamp holds the inputs as they were before the build read them, and none is written when a
    factory source changed after the build started: the next compile builds again."""
    from compiler import build
    from compiler.cli import cli

    project, env = compiled
    pylib = Path(env["PYTHONPATH"].split(os.pathsep)[0])
    monkeypatch.syspath_prepend(str(pylib))
    real = build.build_project

    def build_then_edit(*args, **kwargs):
        result = real(*args, **kwargs)
        if edited == "manifest":
            manifest = project / "deployment" / "manifests" / "app.yaml"
            manifest.write_text(manifest.read_text() + "\n# edited during the build\n")
        else:
            (pylib / "acme_jobs.py").write_text(FACTORY + "\n# edited during the build\n")
        return result

    monkeypatch.setattr(build, "build_project", build_then_edit)
    runner = CliRunner()
    assert runner.invoke(cli, ["compile", "--force", "--project-dir", str(project)], obj={}).exit_code == 0
    monkeypatch.setattr(build, "build_project", real)
    again = runner.invoke(cli, ["compile", "--check", "--project-dir", str(project)], obj={})
    assert SKIPPED not in again.output, again.output


def test_the_fingerprint_covers_every_library_the_compiler_imports():
    """A library that reads, validates or renders (tomli, jsonschema_rs, jinja2, ...) but is missing from the
    fingerprint would let an upgrade change the output while `compile --check` still skips the build."""
    import ast
    import sys

    from compiler import incremental
    from tests.support.env import ROOT

    imported: set[str] = set()
    for path in (ROOT / "compiler").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {name for name in imported
                   if name not in sys.stdlib_module_names and name not in {"compiler", "runtime", "schemas", "oneiric"}}
    assert third_party - incremental.NOT_FINGERPRINTED <= set(incremental.LIBRARIES), \
        sorted(third_party - incremental.NOT_FINGERPRINTED - set(incremental.LIBRARIES))
