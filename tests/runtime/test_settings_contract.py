"""The settings contract (runtime/contract.py): one home for env names, value parsing and constraints; every
override checked against the constraints the compiler derived from the schemas, in process (a property test
over every key of the compiled artifacts) and through the real CLI."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from runtime import contract
from runtime.artifact import load_artifacts
from runtime.contract import ContractError
from runtime.overrides import apply_env, apply_overrides
from tests.support.cli import run_cli
from tests.support.env import ROOT, clean_env

ARTIFACTS = {name: load_artifacts(ROOT / "build" / f"{name}_profile.json").profile
             for name in ("serverless", "default")}


# ---------------------------------------------------------------- one home

def test_no_module_but_the_contract_derives_env_names():
    """Env names are built in runtime/contract.py only: no other source joins the ONEIRIC_ prefix to parts."""
    derive = re.compile(r"""["']ONEIRIC_["']\s*\+|f["']ONEIRIC_\{|["']__["']\.join\(""")
    offenders = []
    for folder in ("runtime", "compiler", "oneiric", "tests", "scripts", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            if path == ROOT / "runtime" / "contract.py" or ".venv" in path.parts:
                continue
            text = path.read_text(encoding="utf-8")
            offenders += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in derive.finditer(text)]
    assert offenders == []


def test_both_spellings_and_the_artifacts_names_agree():
    for profile in ARTIFACTS.values():
        for key in profile.env_keys:
            assert key.name == contract.env_name(key.path)
            assert contract.env_names(key.path)[0] == key.name
    assert contract.alt_env_name("runtime.supervisor.enabled") == "ONEIRIC_RUNTIME__SUPERVISOR__ENABLED"
    assert (contract.env_name("adapters.provider_settings.gcp.secret_manager.project_id")
            == "ONEIRIC_ADAPTERS_PROVIDER_SETTINGS_GCP_SECRET_MANAGER__PROJECT_ID")


def test_patterns_are_full_matches_without_the_newline_hole():
    assert contract.pattern_matches("^[a-z]+$", "abc")
    assert not contract.pattern_matches("^[a-z]+$", "abc\n")
    assert contract.pattern_matches("^a[$]$", "a$") and not contract.pattern_matches("^a[$]$", "a$\n")


# ---------------------------------------------------------------- the property: outside refused, inside applied

_BOUND_WORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def _inside(key) -> st.SearchStrategy[tuple[str, object]]:
    """(raw env text, the value it must become) within the key's constraints."""
    rules = key.constraints
    if key.secret_bound:
        name = st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True)
        return st.tuples(name, st.sampled_from(["", "@latest", "@7"])).map(
            lambda t: (f"secret://{t[0]}{t[1]}", f"secret://{t[0]}{t[1]}"))
    if key.type == "boolean":
        words = sorted(contract.TRUE_WORDS | contract.FALSE_WORDS)
        return st.sampled_from(words).map(lambda w: (w.upper() if len(w) % 2 else w, contract.parse_bool(w)))
    if "enum" in rules:
        return st.sampled_from(rules["enum"]).map(lambda v: (str(v), v))
    if key.type in ("integer", "number"):
        low = rules.get("minimum", rules.get("exclusiveMinimum", -10 ** 9))
        high = rules.get("maximum", rules.get("exclusiveMaximum", 10 ** 9))
        if key.type == "integer":
            low = math.floor(low) + (1 if "exclusiveMinimum" in rules else 0)
            high = math.ceil(high) - (1 if "exclusiveMaximum" in rules else 0)
            return st.integers(low, high).map(lambda v: (str(v), v))
        return st.floats(low, high, allow_nan=False, exclude_min="exclusiveMinimum" in rules,
                         exclude_max="exclusiveMaximum" in rules).map(lambda v: (repr(v), v))
    if key.type == "string":
        if "pattern" in rules:
            text = st.from_regex(rules["pattern"], fullmatch=True).filter(lambda t: "\x00" not in t)
        else:
            text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1)
        return text.filter(lambda t: (t.strip() != "" or not rules.get("nullable"))
                           and contract.credential_literal(key.path, t) is None).map(lambda t: (t, t))
    if rules.get("items", {}).get("type") == "object":  # supervisor windows
        window = st.fixed_dictionaries({"action": st.sampled_from(["pause", "drain"]),
                                        "start": st.sampled_from(["00:00", "09:30", "23:59"]),
                                        "end": st.sampled_from(["00:00", "17:45"])})
        return st.lists(window, max_size=2).map(lambda xs: (json.dumps(xs), xs))
    items = st.lists(st.from_regex(r"[A-Za-z0-9/._-]{1,12}", fullmatch=True), max_size=4)
    return items.map(lambda xs: (json.dumps(xs), xs))


def _outside(key) -> st.SearchStrategy[str] | None:
    """Raw env text that breaks the key's type or constraints, or None when nothing can."""
    rules = key.constraints
    if key.secret_bound:
        return st.text(min_size=1).map(lambda t: "zz-literal-" + t)
    if key.type == "boolean":
        return st.text(min_size=1).filter(lambda t: contract.parse_bool(t) is None and t.strip())
    if key.type in ("integer", "number"):
        options = [st.sampled_from(["nan", "inf", "-inf", "1e400", "ten", "0x10"])]
        for word in _BOUND_WORDS:
            if word in rules:
                bound = rules[word]
                above = word in ("maximum", "exclusiveMaximum")
                edge = bound if word.startswith("exclusive") else (bound + 1 if above else bound - 1)
                far = st.integers(0, 10 ** 12).map(lambda d, e=edge, a=above: e + d if a else e - d)
                options.append(far.map(str))
                options.append(st.sampled_from(["1e300", "-1e300", "1e-7", "-1"]).filter(
                    lambda t, b=bound, a=above, w=word: (float(t) > b or (w == "exclusiveMaximum" and float(t) >= b))
                    if a else (float(t) < b or (w == "exclusiveMinimum" and float(t) <= b))))
        return st.one_of(options)
    if "enum" in rules:
        return st.text(min_size=1).filter(lambda t: t not in rules["enum"] and t.strip())
    if rules.get("items", {}).get("type") == "object":
        return st.sampled_from(['[{"action": "nap", "start": "00:00", "end": "01:00"}]', '[{"action": "drain"}]',
                                '[{"action": "drain", "start": "25:00", "end": "01:00"}]', '["09:00"]',
                                '[{"action": "drain", "start": "00:00", "end": "01:00", "when": "now"}]'])
    if key.type == "string" and "pattern" in rules:
        return st.text(min_size=1).filter(lambda t: t.strip() and not contract.pattern_matches(rules["pattern"], t))
    return None


_KEYS = [(name, key) for name, profile in ARTIFACTS.items() for key in profile.env_keys]
#: applying these may also run the security cross-check (runtime.contract.check_tasks_auth)
_CROSS_CHECKED = {"http.tasks_auth", "http.hmac_key", "http.oidc_audience", "http.oidc_service_account"}


@pytest.mark.parametrize("profile_name, key", _KEYS, ids=[f"{p}:{k.name}" for p, k in _KEYS])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(data=st.data())
def test_every_env_key_refuses_outside_and_applies_inside(profile_name, key, data):
    profile = ARTIFACTS[profile_name]
    raw, expected = data.draw(_inside(key), label="inside")
    try:
        result = apply_env(profile.settings, profile.env_keys, {key.name: raw}, base_profile=profile.profile.base)
    except ContractError as exc:  # the cross-checks compile runs too may refuse a value inside the constraints
        assert (key.path in _CROSS_CHECKED and "tasks_auth" in str(exc)) or (
            key.path.startswith("remote.") and "manifest_url" in str(exc)), (raw, exc)
    else:
        got = result.applied[key.path]
        assert got == expected or (isinstance(got, float) and math.isclose(got, float(expected))), (raw, got)
        assert result.sources[key.path] == key.name
    outside = _outside(key)
    if outside is None:  # an unconstrained string: every value is inside
        return
    bad = data.draw(outside, label="outside")
    with pytest.raises(ContractError) as caught:
        apply_env(profile.settings, profile.env_keys, {key.name: bad}, base_profile=profile.profile.base)
    assert key.name in str(caught.value)
    if key.secret_bound:
        assert "zz-literal-" not in str(caught.value)


def test_the_compiled_values_meet_their_own_constraints():
    for profile in ARTIFACTS.values():
        apply_overrides(profile, {})


# ---------------------------------------------------------------- through the real CLI

@pytest.mark.parametrize("name, value, says", [
    ("ONEIRIC_HTTP__HEADER_TIMEOUT_SECONDS", "1e-7", "minimum 0.1"),
    ("ONEIRIC_HTTP__HEADER_TIMEOUT_SECONDS", "-1", "minimum 0.1"),
    ("ONEIRIC_HTTP__HEADER_TIMEOUT_SECONDS", "1e300", "maximum 300"),
    ("ONEIRIC_HTTP__MAX_BODY_BYTES", "0", "minimum 100"),
    ("ONEIRIC_HTTP__SHUTDOWN_GRACE_SECONDS", "1e300", "maximum 3600"),
    ("ONEIRIC_RUNTIME_SUPERVISOR__POLL_INTERVAL", "1e300", "maximum 300"),
    ("ONEIRIC_HTTP__PORT", "70000", "maximum 65535"),
    ("ONEIRIC_LOGGING__LEVEL", "LOUD", "one of DEBUG"),
    ("ONEIRIC_HTTP__TASKS_AUTH", "none", "refused under the serverless profile"),
    ("ONEIRIC_HTTP__ALLOW_UNAUTHENTICATED_TASKS", "true", "cannot be set from the environment"),
    ("ONEIRIC_HTTP__HMAC_KEY", "literal-key-Zq9", "only a secret://NAME[@VERSION] reference"),
    ("ONEIRIC_LOGGING__PROJECT_ID", "postgresql://u:pw-Zq9@db/x", "holds a URL with a password"),
    ("ONEIRIC_REMOTE__MANIFEST_URL", "http://example.invalid/m.json", "scheme 'http' is not allowed"),
    ("ONEIRIC_REMOTE__MANIFEST_URL", "file:///etc/passwd", "needs [remote] allow_file_uris = true"),
])
def test_serverless_profile_override_outside_its_constraints_exits_1_naming_it(embedded_project, name, value, says):
    result = run_cli("orchestrate", "--profile", "serverless", "--no-http", cwd=embedded_project,
                     env=clean_env(**{name: value}))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert name in lines[0] and says in lines[0], lines[0]
    if "HMAC" in name or "Zq9" in value:
        assert value not in result.stdout + result.stderr


def test_serverless_profile_compiled_value_outside_its_constraints_refuses_start_naming_it(embedded_project):
    """An artifact edited by hand (and re-digested) past a bound: the runtime checks compiled numbers too."""
    from tests.support.artifacts import edit_artifact

    edit_artifact(embedded_project / "build" / "serverless_profile.json",
                  lambda data: data["settings"]["http"].update(max_body_bytes=0))
    result = run_cli("orchestrate", "--profile", "serverless", "--no-http", cwd=embedded_project, env=clean_env())
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "http.max_body_bytes" in lines[0] and "100" in lines[0] and "run oneiric compile" in lines[0], lines[0]


def test_serverless_profile_override_inside_is_applied_through_the_cli(embedded_project):
    info = run_cli("supervisor-info", "--json", cwd=embedded_project,
                   env=clean_env(ONEIRIC_PROFILE="serverless", ONEIRIC_RUNTIME_SUPERVISOR__POLL_INTERVAL="0.5",
                                 ONEIRIC_HTTP__HMAC_KEY="secret://another-key"))
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["poll_interval"] == 0.5


def test_alternate_spelling_is_reported_by_supervisor_info_and_a_conflict_is_refused(embedded_project):
    env = clean_env(ONEIRIC_PROFILE="serverless", ONEIRIC_RUNTIME__SUPERVISOR__ENABLED="false")
    data = json.loads(run_cli("supervisor-info", "--json", cwd=embedded_project, env=env).stdout)
    assert (data["env_override"], data["supervisor_enabled"], data["decided_by"], data["decided_at"]) == (
        False, False, "env_override", "ONEIRIC_RUNTIME__SUPERVISOR__ENABLED")
    same = dict(env, ONEIRIC_RUNTIME_SUPERVISOR__ENABLED="no")
    assert json.loads(run_cli("supervisor-info", "--json", cwd=embedded_project, env=same).stdout)["env_override"] is False
    clash = dict(env, ONEIRIC_RUNTIME_SUPERVISOR__ENABLED="true")
    result = run_cli("supervisor-info", "--json", cwd=embedded_project, env=clash)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "ONEIRIC_RUNTIME_SUPERVISOR__ENABLED" in result.stderr and "ONEIRIC_RUNTIME__SUPERVISOR__ENABLED" in \
        result.stderr and "different values" in result.stderr


def test_explain_never_prints_a_literal_set_for_a_secret_bound_key(tmp_path: Path):
    result = run_cli("explain", "http.hmac_key", "--profile", "serverless", "--json", cwd=ROOT,
                     env=clean_env(ONEIRIC_HTTP__HMAC_KEY="literal-key-Zq9"))
    assert result.returncode == 0, result.stderr
    assert "literal-key-Zq9" not in result.stdout + result.stderr
    env_layer = json.loads(result.stdout)[-1]
    assert env_layer["value"] == "<redacted>" and env_layer["layer"].startswith("environment (refused at start")
