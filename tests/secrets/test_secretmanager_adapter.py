"""`gcp.secret_manager` against the in-suite gRPC fake, through the official client over 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import google.cloud.secretmanager_v1  # noqa: F401  (loaded up front: timed tests measure calls, not imports)
import grpc
import pytest

from runtime.adapters.base import (
    AdapterContext,
    AdapterError,
    SecretAccessError,
    SecretNotFoundError,
    SecretValue,
    load_factory,
)
from runtime.adapters.secrets_gcp import SecretManagerSecrets

PROJECT = "demo-project"
FACTORY = "runtime.adapters.secrets_gcp:SecretManagerSecrets"
VALUE = "s3cr3t-Value-7f1c9a"  # searched for in everything the adapter says


class Logs(list):
    """A context `log` callable that keeps (severity, message, fields)."""

    def __call__(self, severity, message, **fields):
        self.append((severity, message, fields))

    def text(self) -> str:
        return json.dumps(self, default=str)


@pytest.fixture
def make(fake_sm, tmp_path):
    """Build (not activate) an adapter pointed at the fake; closed after the test."""
    made = []

    def build(refs=(), logs=None, **settings):
        settings = {"project_id": PROJECT, "emulator_host": fake_sm.host, **settings}
        context = AdapterContext(project_dir=tmp_path, cache_dir=tmp_path / ".oneiric_cache",
                                 profile="serverless", log=logs if logs is not None else Logs(),
                                 extra={"secret_refs": list(refs)})
        adapter = SecretManagerSecrets(settings, context=context)
        made.append(adapter)
        return adapter

    yield build
    for adapter in made:
        adapter.close()


def test_factory_string_loads_without_importing_the_sdk():
    code = (
        "import sys\n"
        "from runtime.adapters.base import load_factory\n"
        f"cls = load_factory({FACTORY!r}, ['runtime.adapters'])\n"
        "cls({'project_id': 'demo-project'})\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('google', 'grpc')))\n"
        "print(loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert load_factory(FACTORY, ["runtime.adapters"]) is SecretManagerSecrets


def test_grpc_info_logs_stay_off_stderr_unless_asked_for(fake_sm, make, monkeypatch):
    monkeypatch.delenv("GRPC_VERBOSITY", raising=False)
    make().activate()
    assert os.environ["GRPC_VERBOSITY"] == "ERROR"
    monkeypatch.setenv("GRPC_VERBOSITY", "DEBUG")
    make().activate()
    assert os.environ["GRPC_VERBOSITY"] == "DEBUG"


def test_ready_when_every_reference_resolves(fake_sm, make):
    fake_sm.put("tasks-hmac-key", VALUE)
    fake_sm.put("db-password", "pw-1", "pw-2")
    adapter = make([("tasks-hmac-key", "latest"), ("db-password", "1")])
    adapter.activate()

    health = adapter.readiness()
    assert health["provider"] == "gcp.secret_manager"
    assert health["status"] == "ready"
    assert health["detail"] is None and health["missing"] == []
    assert health["references"] == [
        {"name": "tasks-hmac-key", "version": "latest", "resolved_version": "1", "status": "ready"},
        {"name": "db-password", "version": "1", "resolved_version": "1", "status": "ready"},
    ]
    assert adapter.get("tasks-hmac-key").reveal() == VALUE
    assert adapter.get("db-password", "1").reveal() == "pw-1"
    # everything came from the prefetch: one call per reference, none after
    assert fake_sm.calls["AccessSecretVersion"] == 2


def test_missing_secret_is_named_and_reported_missing(fake_sm, make):
    fake_sm.put("present", VALUE)
    adapter = make([("present", "latest"), ("absent", "latest"), ("present", "7")])
    adapter.activate()  # a missing secret does not fail activation; health reports it

    health = adapter.readiness()
    assert health["status"] == "missing"
    assert health["missing"] == ["absent", "present@7"]
    assert health["detail"] == "missing: absent, present@7"
    assert [r["status"] for r in health["references"]] == ["ready", "missing", "missing"]
    with pytest.raises(SecretNotFoundError, match="secret absent not found in project demo-project"):
        adapter.get("absent")


def test_permission_denied_is_an_error_with_the_fix(fake_sm, make):
    fake_sm.put("locked", VALUE)
    fake_sm.deny("locked")
    fake_sm.put("open", "fine")
    adapter = make([("open", "latest"), ("locked", "latest")])
    adapter.activate()

    health = adapter.readiness()
    assert health["status"] == "error"
    assert health["detail"].startswith("permission denied reading secret locked")
    assert "roles/secretmanager.secretAccessor" in health["detail"]
    with pytest.raises(SecretAccessError, match="^permission denied"):
        adapter.get("locked")


def test_health_is_the_providers_own_state(fake_sm, make):
    """health(): does Secret Manager answer? Absent or denied secrets are readiness, not provider, failures."""
    fake_sm.put("here", VALUE)
    fake_sm.put("locked", VALUE)
    fake_sm.deny("locked")
    adapter = make([("here", "latest"), ("gone", "latest"), ("locked", "latest")])
    adapter.activate()
    assert adapter.health() == {"provider": "gcp.secret_manager", "status": "ready",
                                "detail": "project demo-project: 1 of 3 references resolve"}
    assert adapter.readiness()["status"] == "error"
    fake_sm.fail(grpc.StatusCode.UNAVAILABLE)
    adapter.invalidate()
    health = adapter.health()
    assert health["status"] == "error" and health["detail"].startswith("unavailable")
    fake_sm.clear_faults()
    assert adapter.health()["status"] == "ready"


def test_foreign_project_path_is_permission_denied(fake_sm, make):
    adapter = make()
    adapter.activate()
    with pytest.raises(SecretAccessError, match="^permission denied"):
        adapter.get("projects/someone-else/secrets/theirs")


def test_unavailable_then_recovers_on_next_call(fake_sm, make):
    fake_sm.put("k", VALUE)
    fake_sm.fail(grpc.StatusCode.UNAVAILABLE)
    adapter = make([("k", "latest")])
    adapter.activate()

    health = adapter.readiness()
    assert health["status"] == "error"
    assert health["detail"].startswith("unavailable")
    with pytest.raises(SecretAccessError, match="^unavailable"):
        adapter.get("k")

    fake_sm.clear_faults()
    assert adapter.get("k").reveal() == VALUE  # a failure is never cached
    assert adapter.readiness()["status"] == "ready"


def test_one_transient_failure_heals_by_itself(fake_sm, make):
    fake_sm.put("k", VALUE)
    fake_sm.fail(grpc.StatusCode.UNAVAILABLE, times=1)
    adapter = make([("k", "latest")])
    adapter.activate()
    assert adapter.readiness()["status"] == "ready"  # health asks again instead of repeating the failure
    assert fake_sm.calls["AccessSecretVersion"] == 2


def test_deadline_is_reported_unavailable(fake_sm, make):
    fake_sm.put("slow", VALUE)
    fake_sm.latency = 0.5
    adapter = make([("slow", "latest")], timeout_seconds=0.1)
    adapter.activate()  # returns at the 0.1 s deadline: the detail below names the deadline, not the reply
    health = adapter.readiness()
    assert health["status"] == "error" and health["detail"].startswith("unavailable")
    assert "DeadlineExceeded" in health["detail"]


def test_rotation_after_ttl_picks_up_a_new_version(fake_sm, make):
    fake_sm.put("rotating", "v1-value")
    adapter = make([("rotating", "latest")], cache_ttl_seconds=0.3)
    adapter.activate()
    assert adapter.get("rotating").reveal() == "v1-value"

    fake_sm.put("rotating", "v2-value")
    assert adapter.get("rotating").reveal() == "v1-value"  # within the TTL: cached
    assert fake_sm.calls["AccessSecretVersion"] == 1
    time.sleep(0.35)
    assert adapter.get("rotating").reveal() == "v2-value"
    assert adapter.resolved_version("rotating") == "2"
    assert fake_sm.calls["AccessSecretVersion"] == 2


def test_pinned_versions_are_respected(fake_sm, make):
    fake_sm.put("pinned", "first", "second", "third")
    adapter = make([("pinned", "2"), ("pinned", "latest")], cache_ttl_seconds=0)
    adapter.activate()
    assert adapter.get("pinned", "2").reveal() == "second"
    assert adapter.get("pinned", "latest").reveal() == "third"
    fake_sm.put("pinned", "fourth")
    assert adapter.get("pinned", "2").reveal() == "second"
    assert adapter.get("pinned").reveal() == "fourth"
    assert f"projects/{PROJECT}/secrets/pinned/versions/2" in fake_sm.access_log


def test_default_version_applies_to_unpinned_references(fake_sm, make):
    fake_sm.put("app-key", "old", "new")
    adapter = make([("app-key", None)], default_version="1")
    adapter.activate()
    assert adapter.references() == [("app-key", "1")]
    assert adapter.get("app-key").reveal() == "old"
    assert adapter.get("app-key", "latest").reveal() == "new"
    assert adapter.readiness()["references"][0]["version"] == "1"


def test_disabled_version_is_an_error(fake_sm, make):
    fake_sm.put("d", "a", "b")
    fake_sm.disable("d", 1)
    adapter = make([("d", "1"), ("d", "latest")])
    adapter.activate()
    health = adapter.readiness()
    assert health["status"] == "error"
    assert "disabled or destroyed" in health["detail"]
    assert adapter.get("d").reveal() == "b"


def test_stale_value_is_served_while_unavailable_but_health_says_error(fake_sm, make):
    fake_sm.put("k", VALUE)
    logs = Logs()
    adapter = make([("k", "latest")], logs=logs, cache_ttl_seconds=0.05)
    adapter.activate()
    time.sleep(0.1)
    fake_sm.fail(grpc.StatusCode.UNAVAILABLE)
    fake_sm.reset_counters()
    assert adapter.get("k").reveal() == VALUE
    assert any(sev == "WARNING" and "serving the cached value" in msg for sev, msg, _ in logs)
    assert adapter.get("k").reveal() == VALUE  # no second wait on the wire during the outage
    assert fake_sm.calls["AccessSecretVersion"] == 1
    assert adapter.readiness()["status"] == "error"  # readiness never counts a stale value
    fake_sm.clear_faults()
    assert adapter.readiness()["status"] == "ready"
    fake_sm.put("k", "rotated")
    time.sleep(0.1)
    assert adapter.get("k").reveal() == "rotated"  # back to normal TTL behaviour


def test_stale_value_is_retried_after_the_backoff(fake_sm, make, monkeypatch):
    import runtime.adapters.secrets_gcp as secrets_gcp

    monkeypatch.setattr(secrets_gcp, "STALE_RETRY_SECONDS", 0.1)
    fake_sm.put("k", "old")
    adapter = make([("k", "latest")], cache_ttl_seconds=0.05)
    adapter.activate()
    time.sleep(0.1)
    fake_sm.fail(grpc.StatusCode.UNAVAILABLE)
    assert adapter.get("k").reveal() == "old"
    fake_sm.clear_faults()
    fake_sm.put("k", "new")
    assert adapter.get("k").reveal() == "old"  # still inside the backoff
    time.sleep(0.15)
    assert adapter.get("k").reveal() == "new"


def test_revoked_access_is_never_hidden_by_the_cache(fake_sm, make):
    fake_sm.put("k", VALUE)
    adapter = make([("k", "latest")], cache_ttl_seconds=0.05)
    adapter.activate()
    time.sleep(0.1)
    fake_sm.deny("k")
    with pytest.raises(SecretAccessError, match="^permission denied"):
        adapter.get("k")


def test_invalidate_forces_a_refetch(fake_sm, make):
    fake_sm.put("k", "before")
    adapter = make([("k", "latest")])
    adapter.activate()
    fake_sm.put("k", "after")
    assert adapter.get("k").reveal() == "before"
    adapter.invalidate("k")
    assert adapter.get("k").reveal() == "after"


def test_checksum_mismatch_is_refused_then_recovers(fake_sm, make):
    fake_sm.put("k", VALUE)
    fake_sm.corrupt_checksums = True
    adapter = make([("k", "latest")])
    adapter.activate()
    with pytest.raises(SecretAccessError, match="checksum mismatch"):
        adapter.get("k")
    fake_sm.corrupt_checksums = False
    assert adapter.get("k").reveal() == VALUE


def test_prefetch_is_concurrent(fake_sm, make):
    """Ten references cost about one round trip: the fake sees them all in flight at once."""
    latency = 0.25
    refs = [(f"secret-{i}", "latest") for i in range(10)]
    for name, _ in refs:
        fake_sm.put(name, f"value-{name}")
    fake_sm.latency = latency
    adapter = make(refs)
    adapter.activate()
    # all ten were in flight at the fake at once: concurrency proven by the server's count, not by a clock
    assert fake_sm.max_inflight == 10
    assert fake_sm.calls["AccessSecretVersion"] == 10
    assert adapter.prefetch_ms is not None
    assert [adapter.get(name).reveal() for name, _ in refs] == [f"value-{n}" for n, _ in refs]
    assert fake_sm.calls["AccessSecretVersion"] == 10


def test_concurrent_gets_after_expiry_share_one_fetch(fake_sm, make):
    fake_sm.put("hot", VALUE)
    adapter = make([("hot", "latest")], cache_ttl_seconds=0.05)
    adapter.activate()
    time.sleep(0.1)
    fake_sm.latency = 0.1
    fake_sm.reset_counters()
    results = []
    threads = [threading.Thread(target=lambda: results.append(adapter.get("hot").reveal())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [VALUE] * 8
    assert fake_sm.calls["AccessSecretVersion"] == 1


def test_invalid_names_and_versions_never_reach_the_wire(fake_sm, make):
    adapter = make()
    adapter.activate()
    with pytest.raises(AdapterError, match="is not a secret name"):
        adapter.get("../../etc")
    with pytest.raises(AdapterError, match="is not a version number"):
        adapter.get("ok", "v1/../2")
    assert fake_sm.calls["AccessSecretVersion"] == 0
    with pytest.raises(AdapterError, match="project_id is required"):
        SecretManagerSecrets({})


def test_close_closes_the_transport_and_is_idempotent(fake_sm, make):
    fake_sm.put("k", VALUE)
    adapter = make([("k", "latest")])
    adapter.activate()
    transport = adapter._client.transport
    adapter.close()
    adapter.close()
    with pytest.raises(ValueError):  # grpc refuses calls on a closed channel
        transport.grpc_channel.unary_unary("/x/y")(b"")
    with pytest.raises(AdapterError, match="not activated"):
        adapter.get("k")


def test_wire_methods_with_the_official_client(fake_sm, make):
    """CreateSecret, AddSecretVersion, GetSecret through the official client, then read by the adapter."""
    from google.api_core import exceptions
    from google.cloud.secretmanager_v1 import SecretManagerServiceClient
    from google.cloud.secretmanager_v1.services.secret_manager_service.transports.grpc import (
        SecretManagerServiceGrpcTransport,
    )

    client = SecretManagerServiceClient(
        transport=SecretManagerServiceGrpcTransport(channel=grpc.insecure_channel(fake_sm.host)))
    try:
        parent = f"projects/{PROJECT}"
        secret = client.create_secret(request={"parent": parent, "secret_id": "made-over-wire",
                                               "secret": {"replication": {"automatic": {}}}})
        assert secret.name == f"{parent}/secrets/made-over-wire"
        with pytest.raises(exceptions.AlreadyExists):
            client.create_secret(request={"parent": parent, "secret_id": "made-over-wire", "secret": {}})
        version = client.add_secret_version(request={"parent": secret.name, "payload": {"data": VALUE.encode()}})
        assert version.name == f"{secret.name}/versions/1"
        assert client.get_secret(request={"name": secret.name}).name == secret.name
        with pytest.raises(exceptions.NotFound):
            client.get_secret(request={"name": f"{parent}/secrets/nope"})
        with pytest.raises(exceptions.NotFound):
            client.add_secret_version(request={"parent": f"{parent}/secrets/nope", "payload": {"data": b"x"}})
        with pytest.raises(exceptions.PermissionDenied):
            client.create_secret(request={"parent": "projects/other-project", "secret_id": "x", "secret": {}})
    finally:
        client.transport.close()

    adapter = make([("made-over-wire", "latest")])
    adapter.activate()
    assert adapter.readiness()["status"] == "ready"
    assert adapter.get("made-over-wire").reveal() == VALUE


# ---------------------------------------------------------------------- credentials


def test_missing_credentials_give_one_clear_error_fast(tmp_path):
    context = AdapterContext(tmp_path, tmp_path, "serverless", extra={"secret_refs": [("k", "latest")]})
    adapter = SecretManagerSecrets({"project_id": PROJECT}, context=context)
    import google.cloud.secretmanager_v1  # noqa: F401  (time credential discovery, not the import)

    started = time.monotonic()
    with pytest.raises(AdapterError) as info:
        adapter.activate()
    assert time.monotonic() - started < 2
    message = str(info.value)
    assert "Application Default Credentials" in message
    assert "roles/secretmanager.secretAccessor" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert adapter.health()["status"] == "error"
    assert "Application Default Credentials" in adapter.health()["detail"]
    health = adapter.readiness()
    assert health["status"] == "error" and "Application Default Credentials" in health["detail"]
    assert health["references"] == [{"name": "k", "version": "latest", "resolved_version": None,
                                     "status": "error"}]
    with pytest.raises(AdapterError, match="Application Default Credentials"):
        adapter.get("k")
    adapter.close()


def test_no_adc_anywhere_fails_fast_without_the_metadata_probe(tmp_path):
    """No key file, an empty gcloud config, NO_GCE_CHECK=true: google-auth must not wait on 169.254.169.254."""
    code = (
        "import time\n"
        "from pathlib import Path\n"
        "from runtime.adapters.base import AdapterContext, AdapterError\n"
        "from runtime.adapters.secrets_gcp import SecretManagerSecrets\n"
        "a = SecretManagerSecrets({'project_id': 'demo-project'},"
        " context=AdapterContext(Path('.'), Path('.'), 'serverless'))\n"
        "import google.auth, google.cloud.secretmanager_v1  # time credential discovery, not imports\n"
        "t = time.monotonic()\n"
        "try:\n"
        "    a.activate()\n"
        "except AdapterError as e:\n"
        "    print(round(time.monotonic() - t, 2)); print(e)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "NO_GCE_CHECK": "true", "CLOUDSDK_CONFIG": str(tmp_path),
           "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).resolve().parents[2], timeout=30)
    elapsed, message = out.stdout.split("\n", 1)
    assert float(elapsed) < 1.0, out.stdout + out.stderr
    assert "no Application Default Credentials found" in message
    assert "roles/secretmanager.secretAccessor" in message


# ---------------------------------------------------------------------- redaction


def test_values_never_appear_in_reprs_errors_health_or_logs(fake_sm, make):
    fake_sm.put("k", VALUE)
    fake_sm.put("locked", VALUE)
    fake_sm.deny("locked")
    logs = Logs()
    adapter = make([("k", "latest"), ("locked", "latest"), ("gone", "latest")], logs=logs,
                   cache_ttl_seconds=0.05)
    adapter.activate()
    value = adapter.get("k")
    assert isinstance(value, SecretValue) and value.reveal() == VALUE

    said = [repr(value), str(value), f"{value}", f"{value!r}", repr(adapter), repr([value]),
            repr({"k": value}), json.dumps(adapter.readiness()), json.dumps(adapter.health()), logs.text()]
    time.sleep(0.1)
    fake_sm.corrupt_checksums = True
    for name in ("locked", "gone", "k"):
        with pytest.raises(AdapterError) as info:
            adapter.get(name, "latest") if name != "k" else adapter.get("k", "1")
        said += [str(info.value), repr(info.value), repr(info.value.args)]
    fake_sm.fail(grpc.StatusCode.UNAVAILABLE)
    said += [repr(adapter.get("k")), json.dumps(adapter.readiness()), logs.text()]  # stale path logs too
    assert all(VALUE not in text for text in said), [t for t in said if VALUE in t]
    assert "SecretValue('***')" in said[0]
