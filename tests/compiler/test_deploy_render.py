"""`oneiric deploy render`: the reference serverless profile with a [deploy] table -> a Cloud Run service and a
Cloud Tasks queue that validate against their JSON Schemas, match the reviewed snapshots, stay in step with
`compile --check` and `manifest verify`, hold no secret value, and run: the runtime reads the mounted
secrets without the Secret Manager SDK. Real CLI in subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ONEIRIC = str(Path(sys.executable).with_name("oneiric"))
SENTINEL = "s3cr3t-value-that-must-never-appear"

EXTRA_MANIFEST = """\
source: deploy-test
entries:
  - domain: adapter
    key: cache
    provider: memcache
    factory: oneiric.demo.vector:MemoryVectorStore
    settings_schema: {type: object}
"""
DEPLOY = """
[adapters.provider_settings.memcache]
token = "secret://api-token"

[deploy]
service = "oneiric-runtime"
region = "us-central1"
image = "us-docker.pkg.dev/oneiric-demo/services/oneiric-runtime:committed"
service_account = "oneiric-runtime@oneiric-demo.iam.gserviceaccount.com"
min_instances = 1
max_instances = 7
concurrency = 40
{extra}
[deploy.queue]
max_dispatches_per_second = 5
max_attempts = 20
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEIRIC_")}
    env.update(NO_GCE_CHECK="true", GOOGLE_APPLICATION_CREDENTIALS="/nonexistent/adc.json")
    return env


def _cli(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([ONEIRIC, *args], cwd=project, env=env or _env(), capture_output=True, text=True,
                          timeout=120)


def _project(root: Path, extra: str = "", dsn: str = "secret://pgvector-dsn@3") -> Path:
    """The reference project, its DSN pinned to version 3, one more unpinned secret, and a [deploy] table."""
    for name in ("config", "deployment"):
        shutil.copytree(REPO / name, root / name)
    (root / "deployment" / "manifests" / "extra.yaml").write_text(EXTRA_MANIFEST)
    settings = root / "config" / "serverless.toml"
    text = settings.read_text().replace('dsn = "secret://pgvector-dsn"', f'dsn = "{dsn}"')
    settings.write_text(text + DEPLOY.format(extra=extra))
    done = _cli(root, "compile")
    assert done.returncode == 0, done.stderr
    return root


def _stable(text: str) -> str:
    """The profile artifact's digest in the header changes with any reference setting: masked for review."""
    import re

    return re.sub(r"sha256:[0-9a-f]{64}", "sha256:<profile digest>", text)


def _schema(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((REPO / "schemas" / "deploy" / name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    project = _project(tmp_path_factory.mktemp("deploy") / "app")
    out = _cli(project, "deploy", "render", "--profile", "serverless", "--image", "us-docker.pkg.dev/p/r/svc:abc123",
               env={**_env(), "ONEIRIC_SECRET_PGVECTOR_DSN__3": SENTINEL})
    assert out.returncode == 0, out.stderr
    assert ("gcloud run services replace build/serverless_cloudrun.yaml --region us-central1 --project oneiric-demo"
            in out.stdout)
    assert "gcloud tasks queues create oneiric-workflows" in out.stdout
    assert ("gcloud secrets add-iam-policy-binding pgvector-dsn --project oneiric-demo --member=serviceAccount:oneiric-runtime@oneiric-demo"
            ".iam.gserviceaccount.com --role=roles/secretmanager.secretAccessor") in out.stdout
    return project


def test_service_validates_and_matches_the_snapshot(rendered, snapshot):
    text = (rendered / "build" / "serverless_cloudrun.yaml").read_text()
    service = yaml.safe_load(text)
    errors = [e.message for e in _schema("cloudrun-service.schema.json").iter_errors(service)]
    assert errors == []
    assert _stable(text) == snapshot(name="serverless_cloudrun.yaml")


def test_service_mounts_every_referenced_secret_at_its_version(rendered):
    service = yaml.safe_load((rendered / "build" / "serverless_cloudrun.yaml").read_text())
    template = service["spec"]["template"]
    container = template["spec"]["containers"][0]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["ONEIRIC_PROFILE"] == "serverless" and env["ONEIRIC_SECRETS__DELIVERY"] == "mounted"
    assert env["ONEIRIC_SECRET_PGVECTOR_DSN__3"] == {"secretKeyRef": {"name": "pgvector-dsn", "key": "3"}}
    assert env["ONEIRIC_SECRET_API_TOKEN"] == {"secretKeyRef": {"name": "api-token", "key": "latest"}}
    profile = json.loads((rendered / "build" / "serverless_profile.json").read_text())
    assert {s["name"] for s in profile["secrets"]} == {"pgvector-dsn", "api-token"}
    assert container["image"] == "us-docker.pkg.dev/p/r/svc:abc123"
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
    deadline = profile["settings"]["adapters"]["provider_settings"]["cloudtasks"]["dispatch_deadline_seconds"]
    assert template["spec"]["timeoutSeconds"] >= deadline
    assert template["spec"]["containerConcurrency"] == 40
    assert template["spec"]["serviceAccountName"] == "oneiric-runtime@oneiric-demo.iam.gserviceaccount.com"
    annotations = template["metadata"]["annotations"]
    assert (annotations["autoscaling.knative.dev/minScale"], annotations["autoscaling.knative.dev/maxScale"]) == ("1", "7")
    assert annotations["run.googleapis.com/startup-cpu-boost"] == "true"


def test_queue_validates_and_matches_the_snapshot(rendered, snapshot):
    text = (rendered / "build" / "serverless_queue.yaml").read_text()
    queue = yaml.safe_load(text)
    assert [e.message for e in _schema("cloudtasks-queue.schema.json").iter_errors(queue)] == []
    assert queue["name"] == "projects/oneiric-demo/locations/us-central1/queues/oneiric-workflows"
    assert queue["rateLimits"]["maxDispatchesPerSecond"] == 5 and queue["retryConfig"]["maxAttempts"] == 20
    assert _stable(text) == snapshot(name="serverless_queue.yaml")


def test_rendered_files_hold_no_secret_value_and_are_deterministic(rendered, tmp_path):
    for name in ("serverless_cloudrun.yaml", "serverless_queue.yaml"):
        text = (rendered / "build" / name).read_text()
        assert SENTINEL not in text and str(rendered) not in text
    again = _project(tmp_path / "again")
    assert _cli(again, "deploy", "render", "--image", "us-docker.pkg.dev/p/r/svc:abc123").returncode == 0
    for name in ("serverless_cloudrun.yaml", "serverless_queue.yaml"):
        assert (again / "build" / name).read_bytes() == (rendered / "build" / name).read_bytes()


def test_compile_check_and_verify_cover_the_rendered_files(rendered, tmp_path):
    project = tmp_path / "copy"
    shutil.copytree(rendered, project)
    check = _cli(project, "compile", "--check")
    assert check.returncode == 0 and "build/serverless_cloudrun.yaml" in check.stdout, check.stderr
    verify = _cli(project, "manifest", "verify", "build/serverless_cloudrun.yaml", "build/serverless_queue.yaml")
    assert verify.returncode == 0 and "profile link, rendered from it" in verify.stdout, verify.stdout
    # a [deploy] change makes them stale; a hand edit fails verification
    settings = project / "config" / "serverless.toml"
    settings.write_text(settings.read_text().replace("concurrency = 40", "concurrency = 41"))
    stale = _cli(project, "compile", "--check")
    assert stale.returncode == 1 and "build/serverless_cloudrun.yaml is stale" in stale.stderr
    assert _cli(project, "compile").returncode == 0
    assert "containerConcurrency: 41" in (project / "build" / "serverless_cloudrun.yaml").read_text()
    assert "svc:abc123" in (project / "build" / "serverless_cloudrun.yaml").read_text()  # the recorded --image
    queue = project / "build" / "serverless_queue.yaml"
    queue.write_text(queue.read_text().replace("maxAttempts: 20", "maxAttempts: 21"))
    edited = _cli(project, "manifest", "verify", "build/serverless_queue.yaml")
    assert edited.returncode == 1 and "differs from what its profile renders" in edited.stdout


def test_volume_mounts_and_their_runtime_reading(tmp_path):
    """secrets = "volume": one secret volume per secret, an item per version; the runtime reads the files."""
    secrets_dir = tmp_path / "mounted"
    project = _project(tmp_path / "app", extra='secrets = "volume"\n')
    settings = project / "config" / "serverless.toml"
    settings.write_text(settings.read_text().replace('cache_ttl_seconds = 300',
                                                     f'cache_ttl_seconds = 300\nmount_dir = "{secrets_dir}"'))
    assert _cli(project, "compile").returncode == 0
    assert _cli(project, "deploy", "render").returncode == 0
    service = yaml.safe_load((project / "build" / "serverless_cloudrun.yaml").read_text())
    assert _schema("cloudrun-service.schema.json").is_valid(service)
    spec = service["spec"]["template"]["spec"]
    volumes = {v["secret"]["secretName"]: v for v in spec["volumes"]}
    assert volumes["pgvector-dsn"]["secret"]["items"] == [{"key": "3", "path": "3"}]
    assert volumes["api-token"]["secret"]["items"] == [{"key": "latest", "path": "latest"}]
    mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    assert mounts == {f"{secrets_dir}/pgvector-dsn", f"{secrets_dir}/api-token"}
    # lay the files out as Cloud Run would, then probe: ready, and the Secret Manager SDK never imported
    (secrets_dir / "pgvector-dsn").mkdir(parents=True)
    (secrets_dir / "pgvector-dsn" / "3").write_text("postgresql://u@db:5432/v")
    (secrets_dir / "api-token").mkdir()
    (secrets_dir / "api-token" / "latest").write_text("token")
    env = {**_env(), "ONEIRIC_SECRETS__DELIVERY": "mounted"}
    probe = _probe(project, env)
    assert probe == {"provider": "gcp.secret_manager", "status": "ready", "sdk_imported": False}


def test_env_mounts_are_read_without_the_sdk(rendered):
    """What Cloud Run does with the rendered env (secretKeyRef resolved to values) is all the runtime needs."""
    service = yaml.safe_load((rendered / "build" / "serverless_cloudrun.yaml").read_text())
    values = {("pgvector-dsn", "3"): "postgresql://u@db:5432/v", ("api-token", "latest"): "token"}
    env = _env()
    for item in service["spec"]["template"]["spec"]["containers"][0]["env"]:
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        env[item["name"]] = values[(ref["name"], ref["key"])] if ref else item["value"]
    assert _probe(rendered, env) == {"provider": "gcp.secret_manager", "status": "ready", "sdk_imported": False}
    # a missing mount is named, with the variable it should arrive in
    del env["ONEIRIC_SECRET_API_TOKEN"]
    out = subprocess.run([sys.executable, "-m", "oneiric.cli", "health", "--probe", "--json"], cwd=rendered, env=env,
                         capture_output=True, text=True, timeout=60)
    secrets = json.loads(out.stdout)["secrets"]
    assert secrets["status"] == "missing" and secrets["missing"] == ["api-token"]


def _probe(project: Path, env: dict[str, str]) -> dict:
    code = ("import json, sys\n"
            "from runtime.start import RuntimeOptions, build_runtime\n"
            "rt = build_runtime(RuntimeOptions(profile='serverless', log_stream=sys.stderr))\n"
            "print(json.dumps({'provider': rt.secrets_status['provider'], 'status': rt.secrets_status['status'],\n"
            "  'sdk_imported': any(m.startswith('google.cloud.secretmanager') for m in sys.modules)}))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=project, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("old, new, message", [
    ("concurrency = 40", "timeout_seconds = 30", "shorter than the queue's dispatch deadline (600 s)"),
    ("min_instances = 1", "min_instances = 9", "min_instances = 9 is more than max_instances = 7"),
    ("concurrency = 40", "concurency = 3", "concurency"),
])
def test_deploy_table_errors_name_file_line_col(tmp_path, old, new, message):
    for name in ("config", "deployment"):
        shutil.copytree(REPO / name, tmp_path / name)
    settings = tmp_path / "config" / "serverless.toml"
    table = DEPLOY.format(extra="").replace('[adapters.provider_settings.memcache]\ntoken = "secret://api-token"\n', "")
    settings.write_text(settings.read_text() + table.replace(old, new))
    out = _cli(tmp_path, "compile")
    assert out.returncode == 1
    line = next((l for l in out.stderr.splitlines() if message in l), out.stderr)
    row = len(settings.read_text().split(new)[0].splitlines()) + 1  # the line that holds the bad key
    assert line.startswith(f"config/serverless.toml:{row}:") and ": error: $.deploy" in line, line


def test_render_without_deploy_table_or_compile_says_what_to_do(tmp_path):
    for name in ("config", "deployment"):
        shutil.copytree(REPO / name, tmp_path / name)
    missing = _cli(tmp_path, "deploy", "render")
    assert missing.returncode == 1 and "run oneiric compile" in missing.stderr
    assert _cli(tmp_path, "compile").returncode == 0
    bare = _cli(tmp_path, "deploy", "render")
    assert bare.returncode == 1 and "has no [deploy] table" in bare.stderr


def test_serverless_profile_local_recipe_turns_the_probe_ready(tmp_path):
    """docs/getting-started.md's recipe: env values standing in for Cloud Run's mounts, the Cloud Tasks
    emulator for Cloud Tasks -> `health --probe` of the reference serverless profile is healthy."""
    import socket

    from gcloud_tasks_emulator.server import create_server

    for name in ("config", "deployment", "build"):
        shutil.copytree(REPO / name, tmp_path / name)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = create_server("127.0.0.1", port, default_queue_names=[
        "projects/oneiric-demo/locations/us-central1/queues/oneiric-workflows"])
    server.start()
    try:
        env = {**_env(), "ONEIRIC_PROFILE": "serverless", "ONEIRIC_SECRETS__DELIVERY": "mounted",
               "ONEIRIC_SECRET_PGVECTOR_DSN": "postgresql://vectors@localhost:5432/embeddings",
               "ONEIRIC_ADAPTERS_PROVIDER_SETTINGS_CLOUDTASKS__EMULATOR_HOST": f"127.0.0.1:{port}"}
        out = subprocess.run([sys.executable, "-m", "oneiric.cli", "health", "--probe", "--json", "--manifest",
                              "build/serverless_manifest.json"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120)
    finally:
        server.stop()
    record = json.loads(out.stdout)
    assert out.returncode == 0 and record["status"] == "healthy", out.stdout + out.stderr
    assert (record["secrets"]["provider"], record["secrets"]["status"]) == ("gcp.secret_manager", "ready")


def test_queue_retry_duration_is_the_cloudtasks_setting_the_hmac_window_check_covers(tmp_path):
    """maxRetryDuration = [adapters.provider_settings.cloudtasks] max_retry_duration_seconds; with tasks_auth =
    hmac the compiler's own check (compiler/state_checks.py) keeps it inside hmac_window_seconds."""
    hmac = ('[http]\ntasks_auth = "hmac"\nhmac_key = "secret://tasks-hmac-key"\nhmac_window_seconds = 900\n')
    for name in ("config", "deployment"):
        shutil.copytree(REPO / name, tmp_path / name)
    settings = tmp_path / "config" / "serverless.toml"
    base = settings.read_text()
    start = base.index("[http]")
    end = base.index("[remote]")
    without_oidc = base[:start] + base[end:]
    table = DEPLOY.format(extra="").replace('[adapters.provider_settings.memcache]\ntoken = "secret://api-token"\n', "")
    for retry, ok in ((600, True), (3600, False)):
        text = without_oidc.replace('service_account_email = "tasks-invoker@oneiric-demo.iam.gserviceaccount.com"',
                                    f'service_account_email = "tasks-invoker@oneiric-demo.iam.gserviceaccount.com"\n'
                                    f'max_retry_duration_seconds = {retry}')
        settings.write_text(text + "\n" + hmac + table)
        out = _cli(tmp_path, "compile")
        if ok:
            assert out.returncode == 0, out.stderr
            queue = yaml.safe_load((tmp_path / "build" / "serverless_queue.yaml").read_text())
            assert queue["retryConfig"]["maxRetryDuration"] == "600s"
            service = yaml.safe_load((tmp_path / "build" / "serverless_cloudrun.yaml").read_text())
            names = [e["name"] for e in service["spec"]["template"]["spec"]["containers"][0]["env"]]
            assert "ONEIRIC_SECRET_TASKS_HMAC_KEY" in names  # the signing key is mounted like any secret
        else:
            assert out.returncode == 1 and "max_retry_duration_seconds" in out.stderr, out.stderr
