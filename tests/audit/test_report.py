"""`oneiric report`: deterministic Markdown release notes (snapshot), supervisor layer, probe, previous build."""

from __future__ import annotations

import re

import shutil
import sys
from pathlib import Path

import pytest

from tests.support.cli import cli_in_process, run_cli
from tests.support.projects import clone

from .helpers import SETTINGS, audit_project, commit_all, git_init, stable

PROBE_ENV = {"ONEIRIC_SECRET_TASKS_HMAC_KEY": "k" * 32}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    root = audit_project(tmp_path_factory.mktemp("report") / "proj")
    assert cli_in_process("compile", cwd=root).returncode == 0
    return root


@pytest.fixture(scope="module")
def released_once(compiled: Path, tmp_path_factory) -> Path:
    """A git repo whose HEAD has the previous build; the work tree has a new one (port and log level changed)."""
    root = clone(compiled, tmp_path_factory.mktemp("released") / "proj")
    git_init(root)
    commit_all(root, "release 1")
    settings = root / "config" / "serverless.toml"
    settings.write_text(SETTINGS.replace("port = 8080", "port = 9090") + '\n[logging]\nlevel = "DEBUG"\n')
    assert cli_in_process("compile", cwd=root).returncode == 0
    return root


@pytest.fixture
def project(compiled: Path, tmp_path: Path) -> Path:
    return clone(compiled, tmp_path / "proj")


@pytest.fixture
def released(released_once: Path, tmp_path: Path) -> Path:
    return clone(released_once, tmp_path / "released")


def test_report_snapshot(released: Path, snapshot):
    result = run_cli("report", "--against", "HEAD", cwd=released)
    assert result.returncode == 0, result.stderr
    assert re.sub(r"\b[0-9a-f]{40}\b", "<commit>", stable(result.stdout)) == snapshot  # commits carry a time
    # deterministic: same bytes again, no clock
    assert run_cli("report", "--against", "HEAD", cwd=released).stdout == result.stdout


def test_report_sections(released: Path):
    text = cli_in_process("report", "--against", "HEAD", cwd=released).stdout
    assert "| effective `runtime.supervisor.enabled` | `true` |" in text
    assert "| decided by | profile default (serverless) |" in text
    assert "Provider `env`, set at `config/serverless.toml:5:1`." in text
    assert "| `secret://tasks-hmac-key` | latest | `http.hmac_key` |" in text
    assert "- `ingest` (provider `dag`, queue category `queue`): `a` (task `extract`); `b` (task `load`) after `a`" \
        in text
    assert "  - `$.settings.http.port`: `8080` -> `9090` (set at `config/serverless.toml:12:1`)" in text
    assert ("  - `$.settings.logging.level`: `\"INFO\"` -> `\"DEBUG\"` (was set at `schema default`, now at "
            "`config/serverless.toml:17:1`)") in text
    assert "- manifest: no changes" in text
    assert "- `build/serverless_profile.json`: ok (digest, encoding, manifest link, 2 input(s))" in text


def test_against_a_directory_equals_against_git(released: Path, tmp_path: Path):
    previous = tmp_path / "previous"
    previous.mkdir()
    from .helpers import git

    for name in ("serverless_profile.json", "serverless_manifest.json"):
        (previous / name).write_text(git(released, "show", f"HEAD:build/{name}"))
    by_dir = cli_in_process("report", "--against", str(previous), cwd=released).stdout
    by_git = cli_in_process("report", "--against", "HEAD", cwd=released).stdout
    strip = lambda t: [l for l in t.splitlines() if "previous build" not in l and "Changes since" not in l]
    assert strip(by_dir) == strip(by_git)
    by_file = cli_in_process("report", "--against", str(previous / "serverless_profile.json"), cwd=released).stdout
    assert strip(by_file) == strip(by_git)


def test_env_override_and_source_date_epoch(project: Path):
    result = cli_in_process("report", cwd=project, env={"ONEIRIC_RUNTIME_SUPERVISOR__ENABLED": "false",
                            "SOURCE_DATE_EPOCH": "1700000000"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# Release notes (2023-11-14T22:13:20Z)\n")
    assert "| effective `runtime.supervisor.enabled` | `false` |" in result.stdout
    assert "| decided by | environment (ONEIRIC_RUNTIME_SUPERVISOR__ENABLED=false) |" in result.stdout
    assert "| compiled value | `true`, set by profile default (serverless) |" in result.stdout


def test_settings_file_sets_the_supervisor(project: Path):
    settings = project / "config" / "serverless.toml"
    settings.write_text(SETTINGS + "\n[runtime.supervisor]\nenabled = false\n")
    assert cli_in_process("compile", cwd=project).returncode == 0
    text = cli_in_process("report", cwd=project).stdout
    assert "| decided by | settings file (config/serverless.toml:17:1) |" in text


def test_probe_includes_secrets_and_status(project: Path):
    ready = cli_in_process("report", "--probe", cwd=project, env=PROBE_ENV)
    assert ready.returncode == 0, ready.stderr
    assert ("Live probe (`python -m oneiric.cli --profile serverless health --probe --json`): secrets `env` "
            "status **ready**; overall health **healthy**, activity state `accepting`, supervisor enabled `true`.") \
        in ready.stdout
    assert ("| `vector` | `memory` | `oneiric.demo.vector:MemoryVectorStore` | selected at config/serverless.toml:8:1 "
            "| yes | ready |") in ready.stdout
    missing = cli_in_process("report", "--probe", cwd=project)
    assert "secrets `env` status **missing**, missing `tasks-hmac-key`" in missing.stdout


def test_probe_unavailable_is_reported_not_raised(project: Path, monkeypatch):
    from compiler import release

    monkeypatch.setattr(sys, "executable", "/bin/false")
    notes = release.build_notes(project, project / "build", None, probe=True, environ={})
    text = release.render(notes)
    assert "Live probe unavailable: `python -m oneiric.cli --profile serverless health --probe --json` gave no " \
           "health record (no output (exit 1))." in text


def test_output_and_custom_template(project: Path, tmp_path: Path):
    template = tmp_path / "mine.md.j2"
    template.write_text("{% for p in profiles %}{{ p.name }} {{ p.supervisor.effective }} "
                        "{{ p.secrets.provider }}\n{% endfor %}")
    result = cli_in_process("report", "--template", str(template), "--output", "notes.md", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "wrote notes.md\n"
    assert (project / "notes.md").read_text() == "serverless True env\n"


def test_broken_artifact_fails_with_notes(project: Path):
    path = project / "build" / "serverless_manifest.json"
    path.write_text(path.read_text().replace('"demo"', '"dem0"', 1))
    result = cli_in_process("report", cwd=project)
    assert result.returncode == 1
    assert "**Warning: some artifacts failed verification" in result.stdout
    assert "- `build/serverless_manifest.json`: **FAILED**: digest mismatch" in result.stdout


@pytest.mark.parametrize("args, message", [
    (("--against", "no-such-rev"), "--against no-such-rev: not a directory, an artifact file or a git revision"),
    (("--profile", "nope"), "build/nope_profile.json not found: run oneiric compile --profile nope"),
])
def test_report_errors(project: Path, args, message):
    git_init(project)
    result = cli_in_process("report", *args, cwd=project)
    assert result.returncode == 1
    assert message in result.stderr


def test_no_build(tmp_path: Path):
    result = cli_in_process("report", cwd=tmp_path)
    assert result.returncode == 1
    assert "no compiled profiles in build: run oneiric compile" in result.stderr


def test_new_profile_has_no_previous_build(released: Path):
    shutil.copy(released / "config" / "serverless.toml", released / "config" / "staging.toml")
    staging = released / "config" / "staging.toml"
    staging.write_text(staging.read_text().replace(
        'name = "serverless"', 'name = "staging"\n\n[profiles.staging]\nextends = "serverless"'))
    assert cli_in_process("compile", cwd=released).returncode == 0
    text = cli_in_process("report", "--profile", "staging", "--against", "HEAD", cwd=released).stdout
    assert "no previous build of profile staging" in text


def test_report_resolves_the_revision_draws_each_dag_and_lists_each_change_once(released: Path):
    from .helpers import git

    commit = git(released, "rev-parse", "HEAD").strip()
    text = run_cli("report", "--against", "HEAD", cwd=released).stdout
    assert f"Compared with the previous build at `HEAD` (commit `{commit}`)." in text
    assert f"### Changes since git revision HEAD ({commit})" in text
    assert '```mermaid\ngraph LR\n    n0["a<br/>task extract"]\n    n1["b<br/>task load"]\n    n0 --> n1\n```' in text
    inputs = [line for line in text.splitlines() if line.startswith("| `config/serverless.toml` | settings |")]
    assert len(inputs) == 1 and re.search(r"\| `[0-9a-f]{64}` \|$", inputs[0]), inputs  # the full hash


def test_a_provider_setting_change_is_listed_once(project: Path):
    from .helpers import commit_all, git_init

    git_init(project)
    commit_all(project, "before")
    settings = project / "config" / "serverless.toml"
    settings.write_text(settings.read_text() + '\n[adapters.provider_settings.local]\nmax_attempts = 3\n')
    assert run_cli("compile", cwd=project).returncode == 0
    text = run_cli("report", "--against", "HEAD", cwd=project).stdout
    changed = [line for line in text.splitlines() if "max_attempts" in line]
    assert changed == ["  - `$.settings.adapters.provider_settings.local.max_attempts`: `10` -> `3` (was set at "
                       "`schema default`, now at `config/serverless.toml:17:1`)"], changed
