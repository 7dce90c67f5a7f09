"""Fixtures for the secrets suite: a gRPC Secret Manager fake on 127.0.0.1 and a cloud-free environment."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `tests.fakes` lives beside the suites, not in the installed package
    sys.path.insert(0, str(ROOT))

from tests.fakes.secretmanager import FakeSecretManager  # noqa: E402

PROJECT = "demo-project"


@pytest.fixture(autouse=True)
def no_cloud(monkeypatch, tmp_path_factory):
    """Never let google-auth find real credentials or probe the metadata server."""
    monkeypatch.setenv("NO_GCE_CHECK", "true")  # lowercase: the only spelling google-auth honours
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/oneiric-test-adc.json")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path_factory.mktemp("gcloud-config")))
    monkeypatch.delenv("GCE_METADATA_HOST", raising=False)
    monkeypatch.delenv("GCE_METADATA_IP", raising=False)


@pytest.fixture
def fake_sm():
    """A started Secret Manager fake serving project `demo-project`; stopped after the test."""
    with FakeSecretManager(PROJECT) as fake:
        yield fake
