"""Default profile only: artifact watchers and remote manifest refresh; serverless starts neither."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from runtime.remote import RemoteError, RemoteRefresher, check_file_url, fetch_bytes, load_remote_manifest
from tests.support.artifacts import flip_byte, write_artifact
from tests.support.cli import compile_project
from tests.support.env import clean_env, wait_until


def _manifest(path: Path, source: str = "remote") -> dict:
    return write_artifact(path, {"compiler_version": "test", "entries": [], "format": "oneiric.manifest/1",
                                 "inputs": [], "sources": [source]})


# ---------------------------------------------------------------- remote: unit

def test_file_uri_needs_opt_in_and_a_root(tmp_path):
    target = tmp_path / "m.json"
    _manifest(target)
    url = target.as_uri()
    with pytest.raises(RemoteError, match="allow_file_uris"):
        check_file_url(url, {"allow_file_uris": False, "allowed_file_uri_roots": [str(tmp_path)]})
    with pytest.raises(RemoteError, match="empty"):
        check_file_url(url, {"allow_file_uris": True, "allowed_file_uri_roots": []})
    assert check_file_url(url, {"allow_file_uris": True, "allowed_file_uri_roots": [str(tmp_path)]}) == target


def test_file_uri_outside_roots_refused(tmp_path):
    root, outside = tmp_path / "build", tmp_path / "elsewhere"
    root.mkdir(), outside.mkdir()
    _manifest(outside / "m.json")
    remote = {"allow_file_uris": True, "allowed_file_uri_roots": [str(root)]}
    with pytest.raises(RemoteError, match="outside allowed_file_uri_roots"):
        check_file_url((outside / "m.json").as_uri(), remote)
    with pytest.raises(RemoteError, match="outside"):  # dot-dot segments resolve first
        check_file_url(f"file://{root}/../elsewhere/m.json", remote)
    with pytest.raises(RemoteError, match="outside"):  # a sibling sharing the prefix is not inside
        (tmp_path / "build2").mkdir()
        check_file_url((tmp_path / "build2" / "m.json").as_uri(), remote)


def test_symlink_escape_refused(tmp_path):
    root, outside = tmp_path / "build", tmp_path / "secret-place"
    root.mkdir(), outside.mkdir()
    _manifest(outside / "m.json")
    os.symlink(outside / "m.json", root / "linked.json")
    os.symlink(outside, root / "dir-link")
    remote = {"allow_file_uris": True, "allowed_file_uri_roots": [str(root)]}
    for url in ((root / "linked.json").as_uri(), (root / "dir-link" / "m.json").as_uri()):
        with pytest.raises(RemoteError, match="outside"):
            fetch_bytes(url, remote)


def test_schemes_pins_and_sizes(tmp_path):
    target = tmp_path / "m.json"
    obj = _manifest(target)
    data = target.read_bytes()
    remote = {"allow_file_uris": True, "allowed_file_uri_roots": [str(tmp_path)]}
    with pytest.raises(RemoteError, match="manifest_sha256"):
        fetch_bytes("https://127.0.0.1:9/m.json", {})  # refused before any connection
    for url in ("http://127.0.0.1:9/m.json", "ftp://127.0.0.1/m.json", "/etc/passwd"):
        with pytest.raises(RemoteError, match="only file:// and https://"):
            fetch_bytes(url, remote)
    with pytest.raises(RemoteError, match="max_bytes"):
        fetch_bytes(target.as_uri(), {**remote, "max_bytes": len(data) - 1})
    with pytest.raises(RemoteError, match="sha256"):
        fetch_bytes(target.as_uri(), {**remote, "manifest_sha256": "0" * 64})
    import hashlib

    pinned = {**remote, "manifest_sha256": hashlib.sha256(data).hexdigest()}
    manifest, _ = load_remote_manifest(target.as_uri(), pinned)
    assert manifest.digest == obj["digest"] and manifest.sources == ("remote",)


def test_only_verified_compiled_manifests(tmp_path):
    remote = {"allow_file_uris": True, "allowed_file_uri_roots": [str(tmp_path)]}
    (tmp_path / "m.yaml").write_text("source: x\nentries: []\n")
    with pytest.raises(RemoteError, match="not a JSON manifest artifact"):
        load_remote_manifest((tmp_path / "m.yaml").as_uri(), remote)
    _manifest(tmp_path / "m.json")
    flip_byte(tmp_path / "m.json", b'"sources": [\n    "')
    with pytest.raises(RemoteError, match="digest verification failed"):
        load_remote_manifest((tmp_path / "m.json").as_uri(), remote)


class _FakeRuntime:
    def __init__(self, cache_dir: Path, manifest) -> None:
        self.cache_dir, self.manifest, self.logs = cache_dir, manifest, []

    def log(self, severity, message, **fields):
        self.logs.append((severity, message, fields))

    def swap_manifest(self, manifest, path=None):
        self.manifest = manifest


def test_refresher_keeps_current_manifest_on_failure(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    good = _manifest(root / "m.json", "v2")
    rt = _FakeRuntime(tmp_path / "cache", manifest=type("M", (), {"digest": "sha256:old"})())
    remote = {"manifest_url": (root / "m.json").as_uri(), "allow_file_uris": True,
              "allowed_file_uri_roots": [str(root)], "refresh_interval": 60}
    refresher = RemoteRefresher(rt, remote)
    assert refresher.refresh_once() is True and rt.manifest.digest == good["digest"]
    assert (tmp_path / "cache" / "remote_manifest.json").read_bytes() == (root / "m.json").read_bytes()
    flip_byte(root / "m.json", b'"sources": [\n    "')
    assert refresher.refresh_once() is False and rt.manifest.digest == good["digest"]
    assert rt.logs[-1][0] == "ERROR" and refresher.status == "error"


# ---------------------------------------------------------------- live

def _digest(orch):
    return orch.get("/healthz")[2]["manifest_digest"]


def test_default_profile_remote_refresh_applies_inside_roots_and_refuses_escape(ref_project, tmp_path, orchestrators):
    root = tmp_path / "published"
    root.mkdir()
    new = _manifest(root / "m.json", "published")
    outside = tmp_path / "outside"
    outside.mkdir()
    _manifest(outside / "m.json", "outside")
    os.symlink(outside / "m.json", root / "escape.json")
    base = clean_env(ONEIRIC_SECRET_TASKS_HMAC_KEY="k", ONEIRIC_REMOTE__ALLOW_FILE_URIS="true",
                     ONEIRIC_REMOTE__ALLOWED_FILE_URI_ROOTS=json.dumps([str(root)]),
                     ONEIRIC_REMOTE__REFRESH_INTERVAL="0.2")

    escape = orchestrators(ref_project, ["orchestrate", "--no-watch", "--health-path", str(tmp_path / "a.json")],
                           dict(base, ONEIRIC_REMOTE__MANIFEST_URL=(root / "escape.json").as_uri())).wait_ready()
    refused = escape.wait_log("remote manifest refused; keeping the current one")
    assert "outside allowed_file_uri_roots" in refused["error"]
    assert _digest(escape) != new["digest"] and escape.get("/healthz")[0] == 200
    assert escape.terminate() == 0

    applied = orchestrators(ref_project, ["orchestrate", "--no-watch", "--health-path", str(tmp_path / "b.json")],
                            dict(base, ONEIRIC_REMOTE__MANIFEST_URL=(root / "m.json").as_uri())).wait_ready()
    assert applied.wait_log("remote manifest applied")["digest"] == new["digest"]
    assert _digest(applied) == new["digest"]
    assert applied.terminate() == 0

    # --no-remote wins over the settings
    off = orchestrators(ref_project, ["orchestrate", "--no-remote", "--no-watch", "--health-path",
                                      str(tmp_path / "c.json")],
                        dict(base, ONEIRIC_REMOTE__MANIFEST_URL=(root / "m.json").as_uri())).wait_ready()
    assert off.wait_log("ready")["remote_enabled"] is False
    time.sleep(0.5)
    assert _digest(off) != new["digest"]
    assert off.terminate() == 0


def test_default_profile_watcher_reloads_and_keeps_old_on_bad_artifacts(ref_project, orchestrators):
    env = clean_env(ONEIRIC_SECRET_TASKS_HMAC_KEY="k", ONEIRIC_RUNTIME_SUPERVISOR__POLL_INTERVAL="0.1")
    orch = orchestrators(ref_project, ["orchestrate", "--no-remote"], env).wait_ready()
    before = _digest(orch)
    manifest_yaml = next((ref_project / "deployment" / "manifests").glob("*.yaml"))
    manifest_yaml.write_text(manifest_yaml.read_text().replace('version: "1.2.0"', 'version: "1.2.1"', 1))
    compile_project(ref_project)
    after = json.loads((ref_project / "build" / "default_manifest.json").read_text())["digest"]
    assert after != before
    wait_until(lambda: _digest(orch) == after, timeout=5)
    orch.wait_log("artifacts reloaded")  # (a check mid-compile may have refused a half-written pair first)
    seen = len(orch.records)
    flip_byte(ref_project / "build" / "default_manifest.json", b'"key": "')
    failed = orch.wait_log("artifacts changed but failed verification; keeping the running ones", after=seen)
    assert "build/default_manifest.json" in failed["error"]
    assert _digest(orch) == after and orch.get("/healthz")[0] == 200
    assert orch.terminate() == 0


def test_serverless_profile_starts_no_watcher_and_no_remote(embedded_project, orchestrators, tmp_path):
    root = tmp_path / "published"
    root.mkdir()
    _manifest(root / "m.json")
    env = clean_env(ONEIRIC_SECRET_TASKS_HMAC_KEY="k", ONEIRIC_REMOTE__ENABLED="true",
                    ONEIRIC_REMOTE__ALLOW_FILE_URIS="true", ONEIRIC_REMOTE__ALLOWED_FILE_URI_ROOTS=str(root),
                    ONEIRIC_REMOTE__MANIFEST_URL=(root / "m.json").as_uri(), ONEIRIC_REMOTE__REFRESH_INTERVAL="0.1")
    orch = orchestrators(embedded_project, ["orchestrate", "--profile", "serverless"], env).wait_ready()
    ready = orch.wait_log("ready")
    assert ready["watchers_enabled"] is False
    before = _digest(orch)
    flip_byte(embedded_project / "build" / "serverless_manifest.json", b'"key": "')
    time.sleep(0.6)  # several poll and refresh intervals
    assert _digest(orch) == before
    assert not [r for r in orch.records if "artifacts" in r["message"] or r["message"].startswith("remote manifest")]
    assert orch.wait_log("remote.enabled is true but profile serverless does not refresh remote manifests "
                         "(remote_enabled=false); serving the packaged manifest")
    assert orch.terminate() == 0
