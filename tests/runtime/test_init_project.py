"""`oneiric init`: a blank directory -> compile -> orchestrate -> workflow enqueue -> run succeeded, with no edit and
no secret set; the generated review test passes under pytest; init never overwrites. Real CLI, real server."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.cli import run_cli
from tests.support.env import ONEIRIC, clean_env, wait_until


def _oneiric(cwd, *args, env=None, timeout=120):
    return subprocess.run([ONEIRIC, *args], cwd=cwd, env=env or clean_env(), capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    base = tmp_path_factory.mktemp("init")
    made = _oneiric(base, "init", "shop-svc", timeout=300)
    assert made.returncode == 0, made.stdout + made.stderr
    root = base / "shop-svc"
    for rel in ("config/default.toml", "config/serverless.toml", "deployment/manifests/app.yaml", "shop_svc/tasks.py",
                "shop_svc/store.py", "Procfile", "Procfile.cloudrun", "requirements.txt", ".gitignore", ".env",
                "tests/test_config_review.py", "tests/__snapshots__/test_config_review.ambr"):
        assert (root / rel).is_file(), rel
    compiled = _oneiric(root, "compile")
    assert compiled.returncode == 0, compiled.stderr
    return root


def test_generated_files_keep_their_promises(project):
    assert ".env" in (project / ".gitignore").read_text().split()
    assert (project / ".env").stat().st_mode & 0o077 == 0  # the local key is readable by its owner only
    assert "\n[http]" not in (project / "config" / "default.toml").read_text()  # the default tasks_auth is complete
    serverless = (project / "config" / "serverless.toml").read_text()
    assert 'tasks_auth = "oidc"' in serverless and "[deploy]" in serverless
    assert _oneiric(project, "procfile", "--check").returncode == 0
    profile = json.loads((project / "build" / "default_profile.json").read_text())
    assert profile["settings"]["http"]["hmac_key"] == "secret://tasks-hmac-key"
    assert profile["provenance"]["http.hmac_key"] == "default for tasks_auth = hmac"
    assert [s["name"] for s in profile["secrets"]] == ["tasks-hmac-key"]
    assert "ONEIRIC_SECRET_TASKS_HMAC_KEY" not in json.dumps(profile)  # a reference, never the value
    requirements = (project / "requirements.txt").read_text()
    assert "bottle==" in requirements and "oneiric==" in requirements


def test_init_compile_orchestrate_enqueue_run_succeeds_with_no_secret_set(project, orchestrators):
    env = clean_env(ONEIRIC_LOGGING__FORMAT="json")
    assert not any(k.startswith("ONEIRIC_SECRET") for k in env)
    orch = orchestrators(project, ["orchestrate"], env).wait_ready()
    queued = run_cli("workflow", "enqueue", "ingest", "--context", '{"records": ["a", "b", "c"]}', "--json",
                     cwd=project, env=env)
    assert queued.returncode == 0, queued.stderr
    run_id = json.loads(queued.stdout)["run_id"]

    def finished():
        out = run_cli("workflow", "status", run_id, "--json", cwd=project, env=env)
        body = json.loads(out.stdout) if out.returncode == 0 else {}
        return body if body.get("status") in ("succeeded", "failed") else None

    body = wait_until(finished, timeout=30, interval=0.2)
    assert body["status"] == "succeeded", body
    assert body["result"]["save"] == {"saved": 3, "stored_in_total": 3}
    assert orch.terminate() == 0


def test_generated_review_test_passes_under_pytest(project):
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project,
                         env=clean_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "2 passed" in out.stdout
    picked = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "serverless_profile"],
                            cwd=project, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert picked.returncode == 0 and "1 passed" in picked.stdout, picked.stdout


def test_deploy_render_works_on_the_generated_project(project):
    out = _oneiric(project, "deploy", "render", "--image", "us-docker.pkg.dev/my-gcp-project/svc/shop-svc:1")
    assert out.returncode == 0, out.stderr
    assert "gcloud run services replace build/serverless_cloudrun.yaml" in out.stdout
    assert _oneiric(project, "compile", "--check").returncode == 0


def test_init_refuses_to_overwrite_and_checks_its_options(project, tmp_path):
    before = (project / "config" / "default.toml").read_bytes()
    again = _oneiric(project.parent, "init", "shop-svc", "--no-snapshots")
    assert again.returncode == 1
    assert "already exist, nothing was written" in again.stderr and "shop-svc/config/default.toml" in again.stderr
    assert (project / "config" / "default.toml").read_bytes() == before
    # one existing file is enough to refuse, and nothing else is written
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "Procfile").write_text("web: mine\n")
    refused = _oneiric(fresh, "init", "--no-snapshots")
    assert refused.returncode == 1 and "Procfile" in refused.stderr
    assert sorted(p.name for p in fresh.iterdir()) == ["Procfile"]
    bad = _oneiric(tmp_path, "init", "x", "--package", "runtime", "--no-snapshots")
    assert bad.returncode == 2 and "--package 'runtime'" in bad.stderr
