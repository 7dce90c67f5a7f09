"""`oneiric procfile [--check]`: both files from one template and the compiled profile; drift is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import cli_in_process, run_cli
from tests.support.env import ROOT
from tests.support.projects import copy_reference

SPEC_LINE = "web: python -m oneiric.cli orchestrate --profile serverless --no-remote\n"


@pytest.fixture
def reference(tmp_path: Path) -> Path:
    return copy_reference(tmp_path / "ref", ("config", "deployment", "build"))


def test_committed_procfiles_match_the_template():
    assert (ROOT / "Procfile").read_text() == SPEC_LINE
    assert (ROOT / "Procfile.cloudrun").read_text() == SPEC_LINE
    result = run_cli("procfile", "--check", cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "up to date: Procfile, Procfile.cloudrun\n"


def test_render_then_check(reference: Path):
    result = cli_in_process("procfile", cwd=reference)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "wrote Procfile\nwrote Procfile.cloudrun\n"
    assert (reference / "Procfile").read_text() == SPEC_LINE
    assert (reference / "Procfile.cloudrun").read_text() == SPEC_LINE
    assert cli_in_process("procfile", "--check", cwd=reference).returncode == 0


@pytest.mark.parametrize("drifted", ["Procfile", "Procfile.cloudrun"])
def test_drift_is_named(reference: Path, drifted: str):
    assert cli_in_process("procfile", cwd=reference).returncode == 0
    (reference / drifted).write_text("web: uv run python -m oneiric.cli orchestrate --profile serverless\n")
    result = cli_in_process("procfile", "--check", cwd=reference)
    assert result.returncode == 1
    assert result.stderr == (f"{drifted} has drifted from the template and serverless_profile.json: "
                             "run oneiric procfile\n")


def test_missing_file_is_drift(reference: Path):
    assert cli_in_process("procfile", cwd=reference).returncode == 0
    (reference / "Procfile.cloudrun").unlink()
    result = cli_in_process("procfile", "--check", cwd=reference)
    assert result.returncode == 1
    assert "Procfile.cloudrun has drifted" in result.stderr


def test_profile_with_remote_enabled_drops_no_remote(reference: Path):
    settings = reference / "config" / "serverless.toml"
    settings.write_text(settings.read_text().replace("[remote]\nenabled = false", "[remote]\nenabled = true"))
    assert cli_in_process("compile", "--profile", "serverless", cwd=reference).returncode == 0
    result = cli_in_process("procfile", cwd=reference)
    assert result.returncode == 0, result.stderr
    assert (reference / "Procfile").read_text() == "web: python -m oneiric.cli orchestrate --profile serverless\n"


def test_without_a_compiled_profile(tmp_path: Path):
    result = cli_in_process("procfile", "--check", cwd=tmp_path)
    assert result.returncode == 1
    assert "build/serverless_profile.json not found: run oneiric compile --profile serverless first" in result.stderr


def test_template_explains_python_instead_of_uv():
    text = (ROOT / "compiler" / "templates" / "Procfile.j2").read_text()
    assert "uv run" in text and "We don't ship uv" in text
