"""`oneiric activity`, `oneiric state` and `oneiric workflow list|status` with the postgres backend, run from an
operator's laptop or a CI job: they activate the secrets adapter (the DSN is a secret reference) and no other
adapter of the service. `workflow run` executes tasks, which reach adapters: it activates them all."""

from __future__ import annotations

import json

from tests.support.cli import run_cli

from .project import MANIFEST, POSTGRES, SETTINGS, env_for, make_project

#: An adapter that leaves a file behind when it is activated (the service's own adapters may need a VPC,
#: credentials or a slow connection an operator's machine does not have).
MARKER_MODULE = '''
from pathlib import Path

from runtime.adapters.base import Adapter


class Marker(Adapter):
    name = "marker"

    def activate(self) -> None:
        Path(self.context.project_dir, "activated-by").open("a").write(self.context.extra["environ"]["WHO"] + "\\n")
'''


def test_activity_and_state_commands_activate_only_the_secrets_adapter(tmp_path, pg_dsn):
    settings = SETTINGS.replace('queue = "local"\n', 'queue = "local"\nprobe = "marker"\n') + (
        '\n[security]\nfactory_allowlist = ["runtime.adapters", "oneiric.demo", "marker_adapter"]\n')
    manifest = MANIFEST + ("  - {domain: adapter, key: probe, provider: marker, "
                           'factory: "marker_adapter:Marker"}\n')
    root = tmp_path / "p"
    root.mkdir()
    (root / "marker_adapter.py").write_text(MARKER_MODULE)
    make_project(root, POSTGRES.format(lease=30), settings=settings, manifest=manifest)
    marker = root / "activated-by"

    out = run_cli(*["health", "--probe", "--json"], cwd=root, env=env_for(root, pg_dsn, WHO="health"), timeout=60)
    assert marker.read_text() == "health\n", out.stdout + out.stderr  # the adapter is selected and activates

    for who, argv in (("migrate", ["state", "migrate", "--json"]), ("status", ["state", "status", "--json"]),
                      ("pause", ["activity", "pause", "--domain", "workflow", "--key", "noop3", "--json"]),
                      ("show", ["activity", "--json"]),
                      ("resume", ["activity", "resume", "--domain", "workflow", "--key", "noop3", "--json"]),
                      ("list", ["workflow", "list", "--json"]), ("dead", ["workflow", "list", "--dead", "--json"])):
        out = run_cli(*argv, cwd=root, env=env_for(root, pg_dsn, WHO=who), timeout=60)
        assert out.returncode == 0, (who, out.stdout + out.stderr)
        assert isinstance(json.loads(out.stdout), (dict, list)), who
    assert marker.read_text() == "health\n"
    out = run_cli(*["workflow", "run", "noop3", "--run-id", "op-1", "--json"], cwd=root,
                  env=env_for(root, pg_dsn, WHO="run"), timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    out = run_cli(*["workflow", "status", "op-1", "--json"], cwd=root, env=env_for(root, pg_dsn, WHO="status"),
                  timeout=60)
    assert out.returncode == 0 and json.loads(out.stdout)["status"] == "succeeded", out.stdout + out.stderr
    assert marker.read_text() == "health\nrun\n"
    out = run_cli(*["activity", "--json"], cwd=root, env=env_for(root, pg_dsn, WHO="show"), timeout=60)
    assert json.loads(out.stdout)["store"].startswith("postgres://127.0.0.1:")
