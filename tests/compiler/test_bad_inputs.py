"""One bad input per diagnostic: `oneiric compile` exits 1 and names file:line:col.

The cases run the command line in process (tests.support.cli.cli_in_process); one test runs the real
subprocess to prove the same output reaches a terminal.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.compiler.inputs import BASE_MANIFEST, BASE_SETTINGS
from tests.support.cli import cli_in_process, run_cli
from tests.support.projects import write_project

M = "deployment/manifests/app.yaml"
S = "config/default.toml"

BOMB = "\n".join([
    "a: &a [x, x, x, x, x, x, x, x, x]",
    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]",
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]",
    "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]",
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]",
    "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]",
]) + "\n"


def _m(old: str, new: str) -> tuple[str, str]:
    assert old in BASE_MANIFEST, old
    return BASE_MANIFEST.replace(old, new, 1), BASE_SETTINGS


def _s(extra: str, replace: tuple[str, str] | None = None) -> tuple[str, str]:
    settings = BASE_SETTINGS
    if replace:
        assert replace[0] in settings
        settings = settings.replace(*replace)
    return BASE_MANIFEST, settings + extra


# (id, (manifest, settings), "file:line:col", fragment of the message or hint, rule)
CASES = [
    ("yaml-duplicate-key", _m("    key: extract\n", "    key: extract\n    key: other\n"),
     f"{M}:5:5", "duplicate key 'key'", "yaml.duplicate-key"),
    ("yaml-python-tag", _m("factory: oneiric.demo.tasks:extract", "factory: !!python/name:os.system ''"),
     f"{M}:6:14", "'!!python/name:os.system' is not allowed", "yaml.tag"),
    ("yaml-alias-bomb", (BOMB, BASE_SETTINGS), f"{M}:1:", "alias expansion", "yaml.alias-bomb"),
    ("yaml-syntax", _m("    provider: demo\n", "    provider: [demo\n"), f"{M}:", "", "yaml.syntax"),
    ("yaml-invalid-utf8", (BASE_MANIFEST.encode().replace(b"source: test", b"source: t\xffst"), BASE_SETTINGS),
     f"{M}:1:10", "invalid UTF-8", "encoding"),
    ("yaml-two-documents", (BASE_MANIFEST + "---\nsource: x\nentries: []\n", BASE_SETTINGS),
     f"{M}:28:1", "expected one YAML document", "yaml.documents"),
    ("manifest-unknown-key", _m("    provider: demo\n", "    proivder: demo\n"),
     f"{M}:5:5", "did you mean 'provider'?", "schema.unknown-key"),
    ("manifest-missing-factory", _m("    factory: oneiric.demo.tasks:extract\n", ""),
     f"{M}:3:5", "missing required key 'factory'", "schema.required"),
    ("manifest-bad-domain", _m("  - domain: task\n", "  - domain: tsak\n"),
     f"{M}:3:13", "did you mean 'task'?", "schema.enum"),
    ("manifest-priority-type", _m("    key: cache\n", "    key: cache\n    priority: high\n"),
     f"{M}:9:15", "'high' is not of type 'integer'", "schema.type"),
    ("manifest-factory-syntax", _m("factory: oneiric.demo.tasks:extract", "factory: oneiric.demo.tasks.extract"),
     f"{M}:6:14", "does not match", "schema.pattern"),
    ("manifest-factory-allowlist", _m("factory: oneiric.demo.tasks:extract", "factory: os:system"),
     f"{M}:6:14", "outside the factory allowlist", "factory.not-allowed"),
    ("manifest-invalid-settings-schema", _m("port: {type: integer, default: 6379}", "port: {type: integr}"),
     f"{M}:15:22", "'integr' is not a JSON Schema type", "manifest.settings-schema"),
    ("dag-cycle", _m("        - id: a\n          task: extract\n",
                     "        - id: a\n          task: extract\n          depends_on: [b]\n"),
     f"{M}:24:23", "a -> b -> a", "dag.cycle"),
    ("dag-dangling-depends-on", _m("depends_on: [a]", "depends_on: [z]"),
     f"{M}:26:24", "depends on 'z'", "dag.unknown-dependency"),
    ("dag-unknown-task", _m("        - id: b\n          task: extract\n", "        - id: b\n          task: extrct\n"),
     f"{M}:25:17", "did you mean 'extract'?", "dag.unknown-task"),
    ("dag-duplicate-node-id", _m("        - id: b\n", "        - id: a\n"),
     f"{M}:24:15", "node id 'a' is used twice", "dag.duplicate-id"),
    ("toml-duplicate-key", _s("", ("tasks_auth = \"none\"\n", "tasks_auth = \"none\"\ntasks_auth = \"hmac\"\n")),
     f"{S}:6:1", "duplicate key 'http.tasks_auth'", "toml.duplicate-key"),
    ("toml-syntax", _s("\n[logging]\nlevel = \n"), f"{S}:8:", "Invalid value", "toml.syntax"),
    ("toml-unknown-section", _s("\n[htpp]\nport = 80\n"), f"{S}:7:1", "did you mean 'http'?", "schema.unknown-key"),
    ("toml-unknown-key", _s("port = 80\nshutdown_grace = 3\n"), f"{S}:7:1", "did you mean 'shutdown_grace_seconds'?",
     "schema.unknown-key"),
    ("toml-wrong-type", _s("port = \"eighty\"\n"), f"{S}:6:8", "'eighty' is not of type 'integer'", "schema.type"),
    ("toml-bad-enum", _s("", ("tasks_auth = \"none\"", "tasks_auth = \"hmca\"")), f"{S}:5:14",
     "did you mean 'hmac'?", "schema.enum"),
    ("secret-literal-password", _s("\n[adapters.provider_settings.redis]\npassword = \"hunter2\"\n"),
     f"{S}:8:12", "literal credential", "secret.literal"),
    ("secret-literal-dsn", _s("\n[adapters.provider_settings.redis]\nurl = \"redis://app:hunter2@cache:6379/0\"\n"),
     f"{S}:8:7", "URL with a password", "secret.literal"),
    ("secret-malformed-ref", _s("\n[adapters.provider_settings.redis]\nurl = \"secret://bad name\"\n"),
     f"{S}:8:7", "malformed secret reference", "secret.syntax"),
    ("selection-unknown-key", _s("\n[adapters.selections]\ncahce = \"redis\"\n"), f"{S}:8:1",
     "did you mean 'cache'?", "select.unknown-key"),
    ("selection-unknown-provider", _s("\n[adapters.selections]\nqueue = \"cloudtask\"\n"), f"{S}:8:9",
     "did you mean 'cloudtasks'?", "select.unknown-provider"),
    ("provider-settings-unknown-provider", _s("\n[adapters.provider_settings.rdis]\nport = 1\n"), f"{S}:7:1",
     "did you mean 'redis'?", "select.unknown-provider"),
    ("provider-settings-wrong-type", _s("\n[adapters.provider_settings.redis]\nport = \"x\"\n"), f"{S}:8:8",
     "'x' is not of type 'integer'", "schema.type"),
    ("file-uri-outside-roots", _s("\n[remote]\nmanifest_url = \"file:///etc/passwd\"\nallow_file_uris = true\n"
                                  "allowed_file_uri_roots = [\"/workspace/build\"]\n"),
     f"{S}:8:16", "outside allowed_file_uri_roots", "remote.file-uri"),
    ("file-uri-dotdot-escape", _s("\n[remote]\nmanifest_url = \"file:///workspace/build/../../etc/passwd\"\n"
                                  "allow_file_uris = true\nallowed_file_uri_roots = [\"/workspace/build\"]\n"),
     f"{S}:8:16", "outside allowed_file_uri_roots", "remote.file-uri"),
    ("tasks-auth-none-serverless", (BASE_MANIFEST, BASE_SETTINGS.replace('"default"', '"serverless"')),
     f"{S}:5:14", "refused under the serverless profile", "auth.none"),
    # hmac without [http] hmac_key is no longer an error: it defaults to secret://tasks-hmac-key
    # (tests/compiler/test_first_hour.py)
    ("oidc-with-local-queue", _s("", ("tasks_auth = \"none\"", "tasks_auth = \"oidc\"\noidc_audience = \"a\"\n"
                                      "oidc_service_account = \"sa@p.iam.gserviceaccount.com\"")),
     f"{S}:5:14", "cannot authenticate the local queue", "auth.queue"),
    ("profile-extends-typo", ("" + BASE_MANIFEST, BASE_SETTINGS.replace('"default"', '"staging"')
                              + "\n[profiles.staging]\nextends = \"serverles\"\n"),
     f"{S}:8:11", "did you mean 'serverless'?", "profile.unknown"),
]


@pytest.mark.parametrize("case_id,inputs,location,fragment,rule", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_reported_with_position(tmp_path: Path, case_id, inputs, location, fragment, rule):
    manifest, settings = inputs
    profile = "staging" if "staging" in settings else "default"
    root = write_project(tmp_path / "proj", manifest, settings, profile=profile)
    if "staging" in settings:
        location = location.replace("default.toml", "staging.toml")
    build = root / "build"
    build.mkdir()
    (build / "default_profile.json").write_text("previous\n")

    text = cli_in_process("compile", "--project-dir", str(root), cwd=root)
    assert text.returncode == 1, text.stdout + text.stderr
    lines = [l for l in text.stderr.splitlines() if ": error: " in l]
    assert any(l.startswith(location) and fragment in l for l in lines), text.stderr

    as_json = cli_in_process("compile", "--project-dir", str(root), "--format", "json", cwd=root)
    assert as_json.returncode == 1
    found = json.loads(as_json.stdout)
    assert rule in {d["rule"] for d in found}
    # nothing written, the previous artifact untouched
    assert sorted(p.name for p in build.iterdir()) == ["default_profile.json"]
    assert (build / "default_profile.json").read_text() == "previous\n"


def test_cases_cover_at_least_25_bad_inputs():
    assert len(CASES) >= 25
    assert len({c[4] for c in CASES}) >= 20


def test_every_error_is_reported_at_once_sorted_by_position(tmp_path: Path):
    manifest = BASE_MANIFEST.replace("    provider: demo\n", "    proivder: demo\n").replace(
        "  - domain: workflow\n", "  - domain: wrkflow\n")
    root = write_project(tmp_path / "proj", manifest, BASE_SETTINGS)
    result = run_cli("compile", "--project-dir", str(root), cwd=root)
    assert result.returncode == 1
    errors = [l for l in result.stderr.splitlines() if ": error: " in l]
    # the misspelt key also leaves `provider` missing: three findings, in file order
    assert [e.split(": error: ")[0] for e in errors] == [f"{M}:3:5", f"{M}:5:5", f"{M}:16:13"], result.stderr


def test_github_format_emits_workflow_annotations(tmp_path: Path):
    root = write_project(tmp_path / "proj", BASE_MANIFEST.replace("    provider: demo\n", "    proivder: demo\n"),
                         BASE_SETTINGS)
    result = cli_in_process("compile", "--project-dir", str(root), "--format", "github", cwd=root)
    assert result.returncode == 1
    assert f"::error file={M},line=5,col=5,title=schema.unknown-key::$.entries[0].proivder: unknown key" in result.stdout
