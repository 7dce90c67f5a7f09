"""Config review for the staging profile: what it compiles to, pinned as syrupy snapshots.

A pull request that changes config/ or deployment/ changes these snapshots;
`pytest --snapshot-update` records the new state and the reviewer reads the
.ambr diff next to the TOML/YAML diff.
"""

from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def test_staging_toggles_and_selections(oneiric_compile):
    artifacts = oneiric_compile(PROJECT, profiles=["staging"])
    profile = artifacts["staging_profile.json"]
    assert profile["profile"]["base"] == "serverless"
    assert profile["profile"]["toggles"]["watchers_enabled"] is False
    assert profile["settings"]["runtime"]["supervisor"]["enabled"] is True
    chosen = {(s["domain"], s["key"]): s["provider"] for s in profile["selections"]}
    assert chosen[("adapter", "secrets")] == "env"
    assert profile["manifest"]["digest"] == artifacts["staging_manifest.json"]["digest"]


def test_staging_settings_snapshot(oneiric_compile, snapshot):
    profile = oneiric_compile(PROJECT, profiles=["staging"])["staging_profile.json"]
    assert profile["settings"] == snapshot(name="settings")
    assert profile["provenance"] == snapshot(name="provenance")
    assert profile["secrets"] == snapshot(name="secrets")


def test_staging_manifest_snapshot(oneiric_compile, snapshot):
    manifest = oneiric_compile(PROJECT, profiles=["staging"])["staging_manifest.json"]
    assert manifest["entries"] == snapshot(name="entries")
