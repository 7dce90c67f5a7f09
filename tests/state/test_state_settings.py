"""`[state]` through the compiler and `oneiric state migrate|status` against a real PostgreSQL server."""

from __future__ import annotations

import json

from tests.support.cli import run_cli

from .project import MANIFEST, POSTGRES, env_for, make_project


def _compile(tmp_path, settings: str):
    (tmp_path / "config").mkdir(parents=True, exist_ok=True)
    (tmp_path / "deployment" / "manifests").mkdir(parents=True, exist_ok=True)
    (tmp_path / "deployment" / "manifests" / "m.yaml").write_text(MANIFEST)
    (tmp_path / "config" / "serverless.toml").write_text(settings)
    return run_cli(*["compile", "--project-dir", str(tmp_path)], cwd=tmp_path, timeout=120)


def test_compile_refuses_a_postgres_backend_without_a_secret_dsn(tmp_path):
    out = _compile(tmp_path, '[state]\nbackend = "postgres"\n')
    assert out.returncode == 1 and 'needs [state] dsn = "secret://NAME"' in out.stderr
    assert "config/serverless.toml:2:" in out.stderr
    out = _compile(tmp_path, '[state]\nbackend = "postgres"\ndsn = "postgresql://app:s3cret@db/app"\n')
    assert out.returncode == 1 and "s3cret" not in out.stderr + out.stdout
    out = _compile(tmp_path, '[state]\nbackend = "postgress"\n')
    assert out.returncode == 1 and "config/serverless.toml:2:" in out.stderr


def test_compile_refuses_hmac_with_cloudtasks_when_retries_outlive_the_signature(tmp_path):
    base = ('[adapters.selections]\nqueue = "cloudtasks"\n\n[adapters.provider_settings.cloudtasks]\n'
            'project_id = "oneiric-test"\nlocation = "us-central1"\nqueue = "q"\n'
            'http_target_url = "https://x.example/tasks/workflow"\n{retry}\n'
            '[http]\ntasks_auth = "hmac"\nhmac_key = "secret://k"\nhmac_window_seconds = 600\n')
    out = _compile(tmp_path, base.format(retry=""))
    assert out.returncode == 1 and "retry duration is unlimited" in out.stderr and 'tasks_auth = \\"oidc\\"' not in out.stderr
    assert "oidc" in out.stderr and "config/serverless.toml:" in out.stderr
    out = _compile(tmp_path, base.format(retry="max_retry_duration_seconds = 3600"))
    assert out.returncode == 1 and "3600 s, longer than [http] hmac_window_seconds = 600" in out.stderr
    out = _compile(tmp_path, base.format(retry="max_retry_duration_seconds = 600"))
    assert out.returncode == 0, out.stderr


def test_compile_refuses_a_retention_shorter_than_the_signature_window(tmp_path):
    out = _compile(tmp_path, '[http]\ntasks_auth = "hmac"\nhmac_key = "secret://k"\nhmac_window_seconds = 172800\n'
                             '\n[state]\nretention_days = 1\n')
    assert out.returncode == 1 and "state.retention_days = 1 prunes runs before" in out.stderr


def test_state_migrate_then_status_on_postgres(tmp_path, pg_dsn):
    root = make_project(tmp_path / "p", POSTGRES.format(lease=30))
    env = env_for(root, pg_dsn)
    out = run_cli(*["state", "migrate", "--json"], cwd=root, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["applied"] == [1, 2] and report["schema_version"] == 2 and report["backend"] == "postgres"
    assert report["location"].startswith("postgres://127.0.0.1:") and "@" not in report["location"]
    out = run_cli(*["state", "migrate"], cwd=root, env=env, timeout=60)
    assert out.returncode == 0 and "applied nothing (already current)" in out.stdout
    out = run_cli(*["state", "status", "--json"], cwd=root, env=env, timeout=60)
    assert out.returncode == 0 and json.loads(out.stdout)["runs"] == 0
    bad = env_for(root, "postgresql://postgres@127.0.0.1:1/none", ONEIRIC_STATE__CONNECT_TIMEOUT_SECONDS="1")
    out = run_cli(*["state", "migrate"], cwd=root, env=bad, timeout=60)
    assert out.returncode == 1 and "postgres://127.0.0.1:1/none" in out.stderr and "Traceback" not in out.stderr
    assert "cannot connect within 1 s" in out.stderr
