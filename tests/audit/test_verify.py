"""`oneiric manifest verify` (real subprocesses): digests, canonical bytes, the manifest link, inputs on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.canonical import compute_digest, pretty_bytes
from tests.support.cli import cli_in_process
from tests.support.projects import clone

from .helpers import audit_project, stable

ARTIFACTS = ("build/serverless_manifest.json", "build/serverless_profile.json")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    root = audit_project(tmp_path_factory.mktemp("verify") / "proj")
    result = cli_in_process("compile", cwd=root)
    assert result.returncode == 0, result.stderr
    return root


@pytest.fixture
def project(compiled: Path, tmp_path: Path) -> Path:
    return clone(compiled, tmp_path / "proj")


def verify(root: Path, *paths: str):
    return cli_in_process("manifest", "verify", *(paths or ARTIFACTS), cwd=root)


def test_fresh_build_verifies(project: Path, snapshot):
    result = verify(project)
    assert result.returncode == 0, result.stdout
    assert stable(result.stdout) == snapshot


def test_json_output(project: Path):
    result = cli_in_process("manifest", "verify", "--json", *ARTIFACTS, cwd=project)
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert [(r["path"], r["kind"], r["ok"]) for r in data] == [
        ("build/serverless_manifest.json", "manifest", True), ("build/serverless_profile.json", "profile", True)]
    assert data[1]["checked"] == ["digest", "encoding", "manifest link", "2 input(s)"]


def flip_byte(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


def test_one_flipped_byte_is_detected(project: Path, snapshot):
    path = project / "build" / "serverless_manifest.json"
    raw = path.read_bytes()
    # a byte inside a value: the factory string of the first entry
    offset = raw.index(b"oneiric.demo.") + len("oneiric.demo.")
    flip_byte(path, offset)
    result = verify(project)
    assert result.returncode == 1
    assert "FAIL  build/serverless_manifest.json: digest mismatch: the file says sha256:" in result.stdout
    assert "FAIL  build/serverless_profile.json: manifest link: the profile pins serverless_manifest.json" \
           in result.stdout
    assert stable(result.stdout) == snapshot


@pytest.mark.parametrize("where", ["whitespace", "structure", "digest"])
def test_any_flipped_byte_fails(project: Path, where: str):
    path = project / "build" / "serverless_profile.json"
    raw = path.read_bytes()
    offset = {"whitespace": raw.index(b"\n  ") + 1, "structure": raw.index(b"{"),
              "digest": raw.index(b'"sha256:') + 10}[where]
    flip_byte(path, offset)
    result = verify(project, "build/serverless_profile.json")
    assert result.returncode == 1, result.stdout
    assert "FAIL  build/serverless_profile.json: " in result.stdout


def test_non_canonical_encoding_is_reported(project: Path):
    path = project / "build" / "serverless_manifest.json"
    path.write_text(json.dumps(json.loads(path.read_text()), indent=4, sort_keys=True) + "\n")
    result = verify(project, "build/serverless_manifest.json")
    assert result.returncode == 1
    assert "not in canonical encoding" in result.stdout
    assert "digest mismatch" not in result.stdout


def test_changed_input_on_disk_is_named(project: Path):
    settings = project / "config" / "serverless.toml"
    settings.write_text(settings.read_text().replace("8080", "9090"))
    result = verify(project)
    assert result.returncode == 1
    assert "FAIL  build/serverless_profile.json: input config/serverless.toml changed since compile" in result.stdout
    assert "ok    build/serverless_manifest.json" in result.stdout


def test_relinked_manifest_with_valid_digest_is_caught(project: Path):
    """A manifest replaced by another self-consistent one: its own digest checks out, the profile's pin does not."""
    path = project / "build" / "serverless_manifest.json"
    data = json.loads(path.read_text())
    data["entries"] = data["entries"][:-1]
    data["digest"] = compute_digest(data)
    path.write_bytes(pretty_bytes(data))
    result = verify(project)
    assert result.returncode == 1
    assert "ok    build/serverless_manifest.json" in result.stdout
    assert "manifest link: the profile pins serverless_manifest.json at sha256:" in result.stdout


def test_artifact_alone_skips_missing_inputs(project: Path, tmp_path: Path):
    lone = tmp_path / "elsewhere" / "dist"
    lone.mkdir(parents=True)
    for name in ("serverless_manifest.json", "serverless_profile.json"):
        (lone / name).write_bytes((project / "build" / name).read_bytes())
    result = cli_in_process("manifest", "verify", str(lone / "serverless_profile.json"))
    assert result.returncode == 0, result.stdout
    assert "not on disk, not checked: config/serverless.toml, deployment/manifests/app.yaml" in result.stdout


def test_not_an_artifact_and_missing_file(project: Path):
    (project / "x.json").write_text('{"format": "other"}\n')
    result = verify(project, "x.json")
    assert result.returncode == 1
    assert "not an Oneiric artifact (format 'other'" in result.stdout
    missing = verify(project, "build/nope.json")
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
