"""`manifest validate` and `manifest pack` refuse what `compile` refuses, with compile's own messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from compiler.build import build_project
from compiler.validate import validate_paths

MANIFEST = """\
source: t
entries:
  - domain: task
    key: extract
    provider: demo
    factory: {factory}
"""
SETTINGS = '[profile]\nname = "default"\n\n[http]\ntasks_auth = "none"\n'
M = "deployment/manifests/app.yaml"


def _project(root: Path, factory: str, settings: bool = True) -> Path:
    (root / "deployment" / "manifests").mkdir(parents=True)
    (root / M).write_text(MANIFEST.format(factory=factory))
    if settings:
        (root / "config").mkdir()
        (root / "config" / "default.toml").write_text(SETTINGS)
    return root


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "oneiric.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def _errors(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if ": error: " in line]


def test_validate_reports_what_compile_reports_in_process(tmp_path: Path):
    root = _project(tmp_path, "os:system")
    compiled = build_project(root, root / "build")
    validated = validate_paths([root / M], root)
    assert [d.rule for d in compiled.diagnostics] == ["factory.not-allowed"]
    assert validated == compiled.diagnostics


@pytest.mark.parametrize("settings", [True, False], ids=["project-settings", "built-in-defaults"])
def test_validate_and_pack_refuse_a_factory_outside_the_allowlist(tmp_path: Path, settings: bool):
    root = _project(tmp_path, "os:system", settings)
    compiled = _cli("compile", cwd=root)
    validated = _cli("manifest", "validate", M, cwd=root)
    packed = _cli("manifest", "pack", "--input", M, "--output", "packed.json", cwd=root)
    assert compiled.returncode == validated.returncode == packed.returncode == 1, (validated.stderr, packed.stderr)
    assert "Traceback" not in validated.stderr + packed.stderr
    assert _errors(compiled) == _errors(validated) == _errors(packed)
    assert any(line.startswith(f"{M}:6:14: error: ") and "allowlist" in line for line in _errors(compiled))
    assert not (root / "packed.json").exists()


def test_validate_checks_a_file_with_the_projects_other_manifests(tmp_path: Path):
    """A pre-commit hook validates the changed file; the workflow it defines runs a task of another file."""
    root = _project(tmp_path, "oneiric.demo.tasks:extract")
    (root / "deployment" / "manifests" / "flows.yaml").write_text(
        "source: t\nentries:\n  - domain: workflow\n    key: ingest\n    provider: dag\n"
        "    factory: runtime.workflows.engine:Engine\n    dag:\n      nodes:\n        - id: a\n          task: extract\n")
    assert _cli("compile", cwd=root).returncode == 0
    result = _cli("manifest", "validate", "deployment/manifests/flows.yaml", cwd=root)
    assert result.returncode == 0, result.stderr


def test_a_valid_manifest_still_validates_and_packs(tmp_path: Path):
    root = _project(tmp_path, "oneiric.demo.tasks:extract")
    assert _cli("manifest", "validate", M, cwd=root).returncode == 0
    packed = _cli("manifest", "pack", "--input", M, "--output", "packed.json", cwd=root)
    assert packed.returncode == 0 and (root / "packed.json").is_file(), packed.stderr
