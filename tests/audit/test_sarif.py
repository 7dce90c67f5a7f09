"""`--format sarif` for compile and manifest validate: valid SARIF 2.1.0 (checked against the OASIS schema)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from tests.support.cli import cli_in_process

from .helpers import MANIFEST, SETTINGS, audit_project

SCHEMA = json.loads((Path(__file__).parent / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))


def check_sarif(text: str) -> dict:
    log = json.loads(text)
    cls = jsonschema.validators.validator_for(SCHEMA)
    cls.check_schema(SCHEMA)
    errors = sorted(cls(SCHEMA, format_checker=cls.FORMAT_CHECKER).iter_errors(log), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    assert log["version"] == "2.1.0"
    return log


BROKEN_MANIFEST = MANIFEST.replace("    provider: demo\n", "    proivder: demo\n", 1).replace(
    "  - domain: workflow\n", "  - domain: wrokflow\n")


def test_compile_errors_as_sarif(tmp_path: Path):
    root = audit_project(tmp_path / "p", manifest=BROKEN_MANIFEST)
    result = cli_in_process("compile", "--format", "sarif", cwd=root)
    assert result.returncode == 1
    log = check_sarif(result.stdout)
    run = log["runs"][0]
    assert run["tool"]["driver"]["name"] == "oneiric"
    # the same findings as --format json, with the same positions
    as_json = json.loads(cli_in_process("compile", "--format", "json", cwd=root).stdout)
    got = [(r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            r["locations"][0]["physicalLocation"]["region"]["startLine"],
            r["locations"][0]["physicalLocation"]["region"]["startColumn"]) for r in run["results"]]
    assert got == [(d["rule"], d["file"], d["line"], d["column"]) for d in as_json]
    assert len(got) >= 2
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert rules == sorted(set(rules))
    for r in run["results"]:
        assert rules[r["ruleIndex"]] == r["ruleId"]
        assert r["level"] == "error"
        assert r["locations"][0]["physicalLocation"]["artifactLocation"]["uriBaseId"] == "%SRCROOT%"


def test_validate_errors_as_sarif(tmp_path: Path):
    root = audit_project(tmp_path / "p", manifest=BROKEN_MANIFEST,
                         settings=SETTINGS + "\n[htpp]\nport = 1\n")
    result = cli_in_process("manifest", "validate", "--format", "sarif", "deployment/manifests/app.yaml",
                            "config/serverless.toml", cwd=root)
    assert result.returncode == 1
    log = check_sarif(result.stdout)
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in log["runs"][0]["results"]}
    assert uris == {"deployment/manifests/app.yaml", "config/serverless.toml"}
    messages = " ".join(r["message"]["text"] for r in log["runs"][0]["results"])
    assert "did you mean 'http'?" in messages


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    root = audit_project(tmp_path_factory.mktemp("sarif") / "p")
    assert cli_in_process("compile", cwd=root).returncode == 0
    return root


@pytest.mark.parametrize("args", [("compile", "--check"), ("manifest", "validate", "deployment/manifests/app.yaml")])
def test_success_is_an_empty_valid_run(compiled: Path, args):
    root = compiled
    result = cli_in_process(*args, "--format", "sarif", cwd=root)
    assert result.returncode == 0, result.stderr
    log = check_sarif(result.stdout)
    assert log["runs"][0]["results"] == []


def test_project_level_error_has_no_location(tmp_path: Path):
    root = tmp_path / "empty"
    (root / "config").mkdir(parents=True)
    result = cli_in_process("compile", "--format", "sarif", cwd=root)
    assert result.returncode == 1
    log = check_sarif(result.stdout)
    (only,) = log["runs"][0]["results"]
    assert only["ruleId"] == "project.no-manifests" and "locations" not in only
