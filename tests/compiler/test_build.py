"""compiler/build.py: the collector pause is scoped to one build, and a finding reported by several
profiles is listed once."""

from __future__ import annotations

import gc

import pytest

from compiler import build
from tests.compiler.inputs import BASE_MANIFEST, BASE_SETTINGS
from tests.support.projects import write_project


def test_the_collector_is_off_during_the_build_and_restored_after(tmp_path, monkeypatch):
    project = write_project(tmp_path / "p", BASE_MANIFEST, BASE_SETTINGS)
    seen = []
    real = build.load_project
    monkeypatch.setattr(build, "load_project", lambda root: (seen.append(gc.isenabled()), real(root))[1])
    assert gc.isenabled()
    assert build.build_project(project, project / "build").ok
    assert seen == [False] and gc.isenabled()


def test_a_collector_that_was_off_stays_off(tmp_path):
    project = write_project(tmp_path / "p", BASE_MANIFEST, BASE_SETTINGS)
    gc.disable()
    try:
        assert build.build_project(project, project / "build").ok
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_collector_comes_back_when_the_build_raises(tmp_path, monkeypatch):
    def broken(root):
        raise OSError("disk gone")

    monkeypatch.setattr(build, "load_project", broken)
    with pytest.raises(OSError):
        build.build_project(tmp_path, tmp_path / "build")
    assert gc.isenabled()


def test_a_finding_every_profile_reports_is_listed_once(tmp_path):
    bad = BASE_MANIFEST.replace("oneiric.demo.tasks:load", "acme.elsewhere:load")  # outside the allowlist
    project = write_project(tmp_path / "p", bad, BASE_SETTINGS)
    (project / "config" / "staging.toml").write_text(
        BASE_SETTINGS.replace('"default"', '"staging"') + '\n[profiles.staging]\nextends = "default"\n')
    result = build.build_project(project, project / "build")
    rules = [d.rule for d in result.diagnostics]
    assert rules == ["factory.not-allowed"], result.diagnostics
