"""Loading artifacts into the model (runtime/artifact.py) and finding them (runtime/locate.py)."""

from __future__ import annotations

import pytest

from runtime.artifact import ArtifactError, load_artifacts
from runtime.locate import LocateError, locate
from tests.support.artifacts import build_artifacts


def test_decoded_artifacts_are_model_objects(tmp_path):
    path = build_artifacts(tmp_path)
    loaded = load_artifacts(path, base=tmp_path)
    assert loaded.profile.profile.toggles.inline_manifest_only is True
    secrets = next(s for s in loaded.profile.selections if s.key == "secrets")
    assert secrets.factory == "runtime.adapters.secrets_env:EnvSecrets" and secrets.settings_path == "secrets"
    assert loaded.profile.env_keys and loaded.manifest.entries == ()
    assert loaded.manifest_path == tmp_path / "build" / "serverless_manifest.json"


def test_wrong_format_is_named(tmp_path):
    path = build_artifacts(tmp_path)
    with pytest.raises(ArtifactError, match="format"):
        load_artifacts(path, manifest_path=path, base=tmp_path)


def test_locate_rules(tmp_path):
    project = tmp_path / "proj"
    build_artifacts(project, profile="serverless")
    build_artifacts(project, profile="default")
    assert locate(environ={}, cwd=project).profile_name == "default"
    loc = locate(environ={"ONEIRIC_PROFILE": "serverless"}, cwd=project)
    assert (loc.profile_name, loc.profile_source) == ("serverless", "ONEIRIC_PROFILE")
    toml = project / "config" / "serverless.toml"
    toml.write_text('[profile]\nname = "serverless"\n')
    loc = locate(environ={"ONEIRIC_CONFIG": str(toml)}, cwd=tmp_path)
    assert (loc.project_dir, loc.profile_name, loc.profile_source) == (project, "serverless", "ONEIRIC_CONFIG")
    # a TOML outside config/: project dir is its parent, profile its stem when [profile] is absent
    loose = project / "serverless.toml"
    loose.write_text("")
    assert locate(environ={"ONEIRIC_CONFIG": str(loose)}, cwd=tmp_path).profile_name == "serverless"
    with pytest.raises(LocateError, match="run oneiric compile"):
        locate(profile="staging", environ={}, cwd=project)
    with pytest.raises(LocateError, match="does not exist"):
        locate(environ={"ONEIRIC_CONFIG": str(project / "config" / "nope.toml")}, cwd=tmp_path)
