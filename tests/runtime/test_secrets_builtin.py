"""The built-in secrets adapters: env variables and mounted files (runtime/adapters/secrets_env.py, secrets_file.py)."""

from __future__ import annotations

import pytest

from runtime.adapters.base import AdapterContext, SecretAccessError, SecretNotFoundError, SecretValue
from runtime.adapters.secrets_env import EnvSecrets, variable_name
from runtime.adapters.secrets_file import FileSecrets


def _ctx(tmp_path, environ=None):
    return AdapterContext(project_dir=tmp_path, cache_dir=tmp_path / ".c", profile="t",
                          extra={"environ": environ or {}})


def test_env_secret_names_and_pins(tmp_path):
    assert variable_name("ONEIRIC_SECRET_", "tasks-hmac.key") == "ONEIRIC_SECRET_TASKS_HMAC_KEY"
    environ = {"ONEIRIC_SECRET_DB_PASSWORD": "latest-value", "ONEIRIC_SECRET_DB_PASSWORD__3": "v3"}
    secrets = EnvSecrets({}, context=_ctx(tmp_path, environ))
    assert secrets.get("db-password").reveal() == "latest-value"
    assert secrets.get("db-password", "3").reveal() == "v3"
    assert secrets.get("db-password", "2").reveal() == "latest-value"  # env has no versions
    with pytest.raises(SecretNotFoundError, match="ONEIRIC_SECRET_NOPE"):
        secrets.get("nope")
    readiness = secrets.readiness([("db-password", "latest"), ("nope", "latest"), ("nope", "4")])
    assert readiness["status"] == "missing" and readiness["missing"] == ["nope", "nope@4"]


def test_env_secret_custom_prefix_and_redaction(tmp_path):
    secrets = EnvSecrets({"prefix": "APP_"}, context=_ctx(tmp_path, {"APP_TOKEN": "s3cret"}))
    value = secrets.get("token")
    assert isinstance(value, SecretValue) and "s3cret" not in repr(value) and "s3cret" not in str(value)


def test_file_secrets_layout_like_cloud_run_volumes(tmp_path):
    root = tmp_path / "secrets"
    root.mkdir()
    (root / "api-key").write_text("k-latest\n")
    (root / "api-key@2").write_text("k2")
    (root / "dsn").mkdir()
    (root / "dsn" / "latest").write_text("postgresql://x")
    (root / "dsn" / "5").write_text("postgresql://five")
    secrets = FileSecrets({"directory": "secrets"}, context=_ctx(tmp_path))  # relative to the project dir
    assert secrets.get("api-key").reveal() == "k-latest"  # trailing newline stripped
    assert secrets.get("api-key", "2").reveal() == "k2"
    assert secrets.get("dsn").reveal() == "postgresql://x"
    assert secrets.get("dsn", "5").reveal() == "postgresql://five"
    with pytest.raises(SecretNotFoundError, match="api-key@9"):
        secrets.get("api-key", "9")
    for bad in ("../etc/passwd", "a/b", ".hidden", ""):
        with pytest.raises(SecretAccessError):
            secrets.get(bad)
    with pytest.raises(SecretAccessError):
        secrets.get("api-key", "../x")
    assert secrets.health()["status"] == "ready"
    assert FileSecrets({"directory": str(tmp_path / "absent")}).health()["status"] == "error"
    keep = FileSecrets({"directory": str(root), "strip_newline": False})
    assert keep.get("api-key").reveal() == "k-latest\n"
