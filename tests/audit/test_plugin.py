"""The pytest plugin: registered by entry point, light to load; the documented example passes and catches changes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.env import ROOT, clean_env

EXAMPLE = ROOT / "examples" / "config-review"


def run_pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:hypothesispytest", *args], cwd=cwd,
                          env=clean_env(), capture_output=True, text=True, timeout=120)


@pytest.fixture
def example(tmp_path: Path) -> Path:
    dest = tmp_path / "config-review"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    return dest


def test_example_passes_in_a_temp_copy(example: Path):
    result = run_pytest(example)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "plugins: " in result.stdout and "oneiric-" in result.stdout
    assert "3 passed" in result.stdout
    assert "4 snapshots passed" in result.stdout


def test_a_config_change_fails_the_snapshot_review(example: Path):
    settings = example / "config" / "staging.toml"
    settings.write_text(settings.read_text().replace("port = 8081", "port = 8082"))
    result = run_pytest(example)
    assert result.returncode == 1
    assert "test_staging_settings_snapshot" in result.stdout
    assert "8082" in result.stdout


def test_compile_errors_fail_the_test_with_positions(example: Path):
    manifest = example / "deployment" / "manifests" / "app.yaml"
    manifest.write_text(manifest.read_text().replace("    key: extract\n", "    key: extract\n    kye: x\n", 1))
    result = run_pytest(example, "-k", "toggles")
    assert result.returncode == 1
    assert "oneiric compile of" in result.stdout
    assert "deployment/manifests/app.yaml:16:5: error: $.entries[1].kye: unknown key 'kye'" in result.stdout


def test_loading_the_plugin_imports_nothing_heavy():
    code = ("import sys, oneiric.pytest_plugin; "
            "heavy = sorted(m for m in ('compiler', 'jsonschema', 'jinja2', 'yaml', 'tomlkit', 'tomli', 'cattrs', 'click') "
            "if m in sys.modules); print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
