"""Project writers: a project is `config/<profile>.toml` plus `deployment/manifests/<name>.yaml`, as
`oneiric compile` reads it; the repository's reference project copied; a prepared project cloned."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.cli import compile_project
from tests.support.env import ROOT


def write_project(root: Path, manifest: str | bytes, settings: str | bytes | None, *, profile: str = "default",
                  manifest_name: str = "app.yaml") -> Path:
    """`manifest` as deployment/manifests/<manifest_name>, `settings` (unless None) as config/<profile>.toml."""
    (root / "deployment" / "manifests").mkdir(parents=True, exist_ok=True)
    (root / "config").mkdir(exist_ok=True)
    _write(root / "deployment" / "manifests" / manifest_name, manifest)
    if settings is not None:
        _write(root / "config" / f"{profile}.toml", settings)
    return root


def _write(path: Path, text: str | bytes) -> None:
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)


def copy_reference(dest: Path, parts: tuple[str, ...] = ("config", "deployment")) -> Path:
    """The repository's reference project (by default its sources, not its committed build/) in `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in parts:
        shutil.copytree(ROOT / part, dest / part)
    return dest


def clone(src: Path, dest: Path) -> Path:
    """A private copy of a prepared project (git repo included, runtime cache left out), so tests share one
    compile but not its files."""
    shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns(".oneiric_cache"))
    return dest


#: Serverless settings on embedded defaults: env secrets, memory vector store, local queue, HMAC (bench/coldstart).
EMBEDDED_SERVERLESS = """\
[profile]
name = "serverless"

[secrets]
provider = "env"

[adapters.selections]
vector = "memory"
queue = "local"

[http]
tasks_auth = "hmac"
hmac_key = "secret://tasks-hmac-key"

[logging]
format = "json"
"""
#: The runtime tests' variant: logs carry trace fields, the supervisor ticks every 0.2 s.
EMBEDDED_SERVERLESS_TESTS = EMBEDDED_SERVERLESS + """\
project_id = "oneiric-demo"

[runtime.supervisor]
poll_interval = 0.2
"""


def make_embedded_project(root: Path, settings_text: str = EMBEDDED_SERVERLESS_TESTS) -> Path:
    """The reference manifests with serverless settings on embedded defaults, compiled."""
    copy_reference(root, ("deployment",))
    (root / "config").mkdir()
    _write(root / "config" / "serverless.toml", settings_text)
    compile_project(root)
    return root


def demo_workflows_manifest(source: str) -> str:
    """The demo tasks and three workflows (noop3, slow3, ingest) that the runtime suites drive."""
    return f"source: {source}\n" + DEMO_WORKFLOW_ENTRIES


DEMO_WORKFLOW_ENTRIES = """\
entries:
  - {domain: task, key: noop, provider: demo, factory: "oneiric.demo.tasks:noop"}
  - {domain: task, key: sleep, provider: demo, factory: "oneiric.demo.tasks:sleep"}
  - {domain: task, key: extract, provider: demo, factory: "oneiric.demo.tasks:extract"}
  - {domain: task, key: transform, provider: demo, factory: "oneiric.demo.tasks:transform"}
  - {domain: task, key: load, provider: demo, factory: "oneiric.demo.tasks:load"}
  - domain: workflow
    key: noop3
    provider: dag
    factory: "runtime.workflows.engine:Engine"
    dag:
      nodes:
        - {id: n1, task: noop}
        - {id: n2, task: noop, depends_on: [n1]}
        - {id: n3, task: noop, depends_on: [n2]}
  - domain: workflow
    key: slow3
    provider: dag
    factory: "runtime.workflows.engine:Engine"
    dag:
      nodes:
        - {id: a, task: sleep, payload: {label: a}}
        - {id: b, task: sleep, depends_on: [a], payload: {label: b}}
        - {id: c, task: sleep, depends_on: [b], payload: {label: c}}
  - domain: workflow
    key: ingest
    provider: dag
    factory: "runtime.workflows.engine:Engine"
    dag:
      nodes:
        - {id: extract, task: extract}
        - {id: transform, task: transform, depends_on: [extract]}
        - {id: load, task: load, depends_on: [transform], payload: {target: vector}}
"""
