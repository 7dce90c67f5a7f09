"""Environment overrides: typed by the artifact's env_keys, unknown keys warned with a hint."""

from __future__ import annotations

import json

import pytest

from runtime.model import EnvKey
from runtime.contract import convert
from runtime.overrides import OverrideError, apply_env
from tests.support.cli import run_cli
from tests.support.env import clean_env
from tests.support.server import http

KEYS = [
    EnvKey("ONEIRIC_LOGGING__PROJECT_ID", "logging.project_id", "string"),
    EnvKey("ONEIRIC_HTTP__PORT", "http.port", "integer"),
    EnvKey("ONEIRIC_HTTP__SHUTDOWN_GRACE_SECONDS", "http.shutdown_grace_seconds", "number"),
    EnvKey("ONEIRIC_RUNTIME_SUPERVISOR__ENABLED", "runtime.supervisor.enabled", "boolean"),
    EnvKey("ONEIRIC_REMOTE__ALLOWED_FILE_URI_ROOTS", "remote.allowed_file_uri_roots", "array"),
    EnvKey("ONEIRIC_HTTP__HMAC_KEY", "http.hmac_key", "string", secret_bound=True),
    EnvKey("ONEIRIC_ADAPTERS_PROVIDER_SETTINGS_GCP_SECRET_MANAGER__PROJECT_ID",
           "adapters.provider_settings.gcp.secret_manager.project_id", "string"),
]
SETTINGS = {"logging": {"project_id": None}, "http": {"port": 8080, "shutdown_grace_seconds": 8,
                                                      "hmac_key": "secret://k"},
            "runtime": {"supervisor": {"enabled": True}}, "remote": {"allowed_file_uri_roots": []}}


def test_string_stays_string_and_numbers_parse():
    result = apply_env(SETTINGS, KEYS, {"ONEIRIC_LOGGING__PROJECT_ID": "00123", "ONEIRIC_HTTP__PORT": "00123",
                                        "ONEIRIC_HTTP__SHUTDOWN_GRACE_SECONDS": "2.5"})
    assert result.settings["logging"]["project_id"] == "00123"
    assert result.settings["http"]["port"] == 123
    assert result.settings["http"]["shutdown_grace_seconds"] == 2.5
    assert SETTINGS["http"]["port"] == 8080  # the artifact's settings are not mutated


@pytest.mark.parametrize("word,value", [("false", False), ("0", False), ("No", False), ("off", False),
                                        ("TRUE", True), ("1", True), ("yes", True), ("on", True)])
def test_boolean_words(word, value):
    result = apply_env(SETTINGS, KEYS, {"ONEIRIC_RUNTIME_SUPERVISOR__ENABLED": word})
    assert result.settings["runtime"]["supervisor"]["enabled"] is value


def test_alternate_spelling_and_case():
    result = apply_env(SETTINGS, KEYS, {"oneiric_runtime__supervisor__enabled": "false"})
    assert result.settings["runtime"]["supervisor"]["enabled"] is False
    assert result.sources["runtime.supervisor.enabled"] == "oneiric_runtime__supervisor__enabled"


def test_arrays_json_or_comma_separated():
    assert convert('["/a", "/b"]', "array", "X") == ["/a", "/b"]
    assert convert("/a, /b", "array", "X") == ["/a", "/b"]


def test_bad_values_raise_naming_the_variable():
    with pytest.raises(OverrideError, match="ONEIRIC_HTTP__PORT='eighty'"):
        apply_env(SETTINGS, KEYS, {"ONEIRIC_HTTP__PORT": "eighty"})
    with pytest.raises(OverrideError, match="boolean"):
        apply_env(SETTINGS, KEYS, {"ONEIRIC_RUNTIME_SUPERVISOR__ENABLED": "maybe"})


def test_unknown_key_warns_with_closest_and_reserved_names_are_quiet():
    result = apply_env(SETTINGS, KEYS, {"ONEIRIC_HTTP__PROT": "1", "ONEIRIC_PROFILE": "x", "ONEIRIC_CONFIG": "y",
                                        "ONEIRIC_SECRET_TOKEN": "z", "OTHER": "1"})
    assert len(result.warnings) == 1
    assert "ONEIRIC_HTTP__PROT" in result.warnings[0] and "did you mean ONEIRIC_HTTP__PORT?" in result.warnings[0]


def test_secret_bound_key_takes_only_a_secret_reference_and_never_echoes_the_value():
    with pytest.raises(OverrideError) as caught:
        apply_env(SETTINGS, KEYS, {"ONEIRIC_HTTP__HMAC_KEY": "plain-text"})
    assert "ONEIRIC_HTTP__HMAC_KEY" in str(caught.value) and "secret://" in str(caught.value)
    assert "plain-text" not in str(caught.value)
    result = apply_env(SETTINGS, KEYS, {"ONEIRIC_HTTP__HMAC_KEY": "secret://other-key@3"})
    assert result.settings["http"]["hmac_key"] == "secret://other-key@3"


def test_provider_names_with_dots_land_in_their_provider():
    result = apply_env({}, KEYS, {"ONEIRIC_ADAPTERS_PROVIDER_SETTINGS_GCP_SECRET_MANAGER__PROJECT_ID": "p-1"})
    assert result.settings["adapters"]["provider_settings"]["gcp.secret_manager"]["project_id"] == "p-1"


# ---------------------------------------------------------------- end to end

def test_serverless_profile_env_false_turns_supervisor_off(embedded_project, orchestrators):
    env = clean_env(ONEIRIC_PROFILE="serverless", ONEIRIC_RUNTIME_SUPERVISOR__ENABLED="false")
    info = run_cli("supervisor-info", "--json", cwd=embedded_project, env=env)
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    assert (data["env_override"], data["supervisor_enabled"], data["decided_by"]) == (False, False, "env_override")
    assert data["decided_at"] == "ONEIRIC_RUNTIME_SUPERVISOR__ENABLED"
    # the live process obeys: no supervisor ticks, so a global pause is not enforced
    orch = orchestrators(embedded_project, ["orchestrate", "--profile", "serverless"],
                         dict(env, ONEIRIC_SECRET_TASKS_HMAC_KEY="k")).wait_ready()
    health_file = embedded_project / ".oneiric_cache" / "runtime_health.json"
    saved = json.loads(health_file.read_text())
    assert saved["lifecycle_state"]["supervisor"] == {**saved["lifecycle_state"]["supervisor"],
                                                      "enabled": False, "status": "disabled"}
    pause = run_cli("activity", "pause", "--domain", "*", "--key", "*", cwd=embedded_project, env=env)
    assert pause.returncode == 0, pause.stderr
    first = health_file.stat().st_mtime_ns
    status, _, _ = orch.get("/healthz")
    assert status == 200
    assert health_file.stat().st_mtime_ns == first
    # unset: the profile default applies again
    on = json.loads(run_cli("supervisor-info", "--json",
                            cwd=embedded_project, env=clean_env(ONEIRIC_PROFILE="serverless")).stdout)
    assert (on["env_override"], on["supervisor_enabled"], on["decided_by"]) == (None, True, "profile_default")
    assert orch.terminate() == 0


def test_serverless_profile_env_typing_end_to_end(embedded_project, orchestrators):
    """"00123" stays a string for logging.project_id (seen in the trace field) and is 123 for max_body_bytes."""
    env = clean_env(ONEIRIC_LOGGING__PROJECT_ID="00123", ONEIRIC_HTTP__MAX_BODY_BYTES="00123",
                    ONEIRIC_SECRET_TASKS_HMAC_KEY="k")
    orch = orchestrators(embedded_project, ["orchestrate", "--profile", "serverless"], env).wait_ready()
    status, _, _ = orch.get("/healthz", headers={"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1"})
    assert status == 200
    line = orch.wait_log("GET /healthz 200")
    assert line["logging.googleapis.com/trace"] == "projects/00123/traces/105445aa7843bc8bf206b12000100000"
    assert line["logging.googleapis.com/spanId"] == "0000000000000001"  # 16 hex digits, as Cloud Logging reads it
    assert line["logging.googleapis.com/trace_sampled"] is True
    status, _, body = http("POST", orch.url + "/tasks/workflow", body=b"x" * 124,
                           headers={"Content-Type": "application/json"})
    assert status == 413, body
    assert body["error"] == "payload_too_large" and "limit" in body["detail"]
    assert orch.terminate() == 0


def test_unknown_env_key_warns_on_stderr_and_keeps_json_clean(embedded_project):
    result = run_cli("supervisor-info", "--json",
                     cwd=embedded_project, env=clean_env(ONEIRIC_PROFILE="serverless", ONEIRIC_HTTP__PROT="9000"))
    assert result.returncode == 0
    json.loads(result.stdout)
    assert "did you mean ONEIRIC_HTTP__PORT?" in result.stderr


def test_bad_env_value_refuses_start(embedded_project):
    result = run_cli("orchestrate", "--profile", "serverless", "--no-http",
                     cwd=embedded_project, env=clean_env(ONEIRIC_HTTP__SHUTDOWN_GRACE_SECONDS="soon"))
    assert result.returncode == 1 and "ONEIRIC_HTTP__SHUTDOWN_GRACE_SECONDS='soon'" in result.stderr


def test_secrets_provider_override_switches_to_builtin(ref_project, cloud_fakes):
    """A Secret Manager profile can run locally on env secrets: ONEIRIC_SECRETS__PROVIDER=env."""
    tasks = "ONEIRIC_ADAPTERS_PROVIDER_SETTINGS_CLOUDTASKS__EMULATOR_HOST"
    env = clean_env(ONEIRIC_PROFILE="serverless", ONEIRIC_SECRETS__PROVIDER="env",
                    ONEIRIC_SECRET_PGVECTOR_DSN="postgresql://localhost/v", **{tasks: cloud_fakes[tasks]})
    result = run_cli("health", "--probe", "--json", cwd=ref_project, env=env)
    report = json.loads(result.stdout)
    assert report["secrets"]["provider"] == "env" and report["secrets"]["status"] == "ready"
    assert report["adapters"]["adapter/secrets"]["provider"] == "env"
    assert report["adapters"]["adapter/vector"]["status"] == "ready"
    assert result.returncode == 0, result.stdout + result.stderr


def test_serverless_profile_supervisor_layers_settings_file_then_env(tmp_path):
    from tests.support.projects import EMBEDDED_SERVERLESS_TESTS, make_embedded_project

    text = EMBEDDED_SERVERLESS_TESTS.replace("poll_interval = 0.2", "poll_interval = 0.2\nenabled = false")
    project = make_embedded_project(tmp_path / "p", text)
    base = clean_env(ONEIRIC_PROFILE="serverless")
    off = json.loads(run_cli("supervisor-info", "--json", cwd=project, env=base).stdout)
    assert (off["supervisor_enabled"], off["decided_by"], off["env_override"]) == (False, "runtime_config", None)
    assert off["decided_at"].startswith("config/serverless.toml:")
    assert off["profile_supervisor_enabled"] is True
    on = json.loads(run_cli("supervisor-info", "--json",
                            cwd=project, env=dict(base, ONEIRIC_RUNTIME_SUPERVISOR__ENABLED="yes")).stdout)
    assert (on["supervisor_enabled"], on["decided_by"], on["env_override"]) == (True, "env_override", True)


@pytest.mark.parametrize("name", ["ONEIRIC_RUNTIME_SUPERVISOR__ENABLED", "ONEIRIC_RUNTIME__SUPERVISOR__ENABLED",
                                  "oneiric_runtime__supervisor__enabled"])
def test_supervisor_info_and_report_agree_on_either_spelling(tmp_path, name):
    """One decision (runtime.settings.SupervisorDecision) behind `supervisor-info` and `report`, whichever
    spelling of the variable the operator used."""
    env = clean_env(**{name: "false"})
    info = run_cli("--demo", "supervisor-info", "--json", cwd=tmp_path, env=env)
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    assert (data["supervisor_enabled"], data["env_override"], data["decided_by"], data["decided_at"]) == \
        (False, False, "env_override", name)
    report = run_cli("--demo", "report", cwd=tmp_path, env=env)
    assert f"| decided by | environment ({name}=false) |" in report.stdout, report.stdout + report.stderr
    assert "| effective `runtime.supervisor.enabled` | `false` |" in report.stdout
