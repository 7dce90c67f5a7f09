"""Fixtures more than one test folder uses; a folder's conftest imports the ones it needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.support.server import Orchestrator


class Orchestrators:
    """Start (`orchestrators(cwd, args, env)`) or adopt (`.append(orch)`) orchestrators; each one still alive is
    killed after the test."""

    def __init__(self) -> None:
        self.started: list[Orchestrator] = []

    def __call__(self, cwd: Path, args: Any = (), env: dict[str, str] | None = None, **kw: Any) -> Orchestrator:
        return self.append(Orchestrator(cwd, list(args), env, **kw))

    def append(self, orch: Orchestrator) -> Orchestrator:
        self.started.append(orch)
        return orch

    def close(self) -> None:
        for orch in self.started:
            orch.close()


@pytest.fixture
def orchestrators() -> Iterator[Orchestrators]:
    fleet = Orchestrators()
    yield fleet
    fleet.close()


@pytest.fixture(scope="session")
def cloud_fakes() -> Iterator[dict[str, str]]:
    """A Secret Manager fake holding the reference project's DSN and a Cloud Tasks emulator holding its queue;
    the variables that point the reference settings at them."""
    from gcloud_tasks_emulator.server import create_server

    from tests.fakes.secretmanager import FakeSecretManager
    from tests.support.env import free_port

    sm = FakeSecretManager("oneiric-demo").start()
    sm.put("pgvector-dsn", "postgresql://vectors@db.internal:5432/embeddings")
    port = free_port()
    tasks = create_server("127.0.0.1", port, target_host="127.0.0.1", target_port=free_port(),
                          default_queue_names=["projects/oneiric-demo/locations/us-central1/queues/oneiric-workflows"],
                          max_retries=1)
    tasks.start()
    try:
        yield {"ONEIRIC_SECRETS__EMULATOR_HOST": sm.host,
               "ONEIRIC_ADAPTERS_PROVIDER_SETTINGS_CLOUDTASKS__EMULATOR_HOST": f"127.0.0.1:{port}"}
    finally:
        tasks.stop()
        sm.stop()
