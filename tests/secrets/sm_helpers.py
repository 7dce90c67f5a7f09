"""The secrets suite's project set-up: the reference project pointed at the fakes, and its gcloud environment."""

from __future__ import annotations

from pathlib import Path

from tests.support.env import clean_env

#: the project the reference config names (config/serverless.toml [secrets] project_id)
REFERENCE_PROJECT = "oneiric-demo"
TASKS_QUEUE = "projects/oneiric-demo/locations/us-central1/queues/oneiric-workflows"


def gcloud_env(tmp: Path, **extra: str) -> dict[str, str]:
    """`tests.support.env.clean_env` with a private, empty gcloud config dir."""
    return clean_env(CLOUDSDK_CONFIG=str(tmp), **extra)


def point_at_fakes(project: Path, sm_host: str, tasks_host: str) -> None:
    """Set `[secrets] emulator_host` (and the Cloud Tasks adapter's) in the project's serverless.toml."""
    import tomlkit

    path = project / "config" / "serverless.toml"
    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    doc["secrets"]["emulator_host"] = sm_host
    doc["adapters"]["provider_settings"]["cloudtasks"]["emulator_host"] = tasks_host
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")
