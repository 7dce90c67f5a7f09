"""`oneiric init [DIR]`: a new project that compiles, serves, enqueues and tests with no edits and no secret set.

Every file comes from a jinja2 template under compiler/templates/init/ through the one template loader
(compiler.templating); the Procfiles from the same template `oneiric procfile` renders, so
`oneiric procfile --check` agrees after the first compile. The only file not from a template is `.env`:
a random local HMAC key (`ONEIRIC_SECRET_TASKS_HMAC_KEY`), git-ignored, which the default profile's env
secrets provider reads (`[secrets] env_file`), so the local queue's signed deliveries work at once.
Nothing is overwritten: `plan()` lists what would be written, `conflicts()` what already exists.
"""

from __future__ import annotations

import keyword
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from compiler.templating import render_template
from runtime.about import VERSION

#: Top-level names the new package must not take (they would shadow Oneiric's own packages or the tests).
RESERVED_PACKAGES = frozenset({"oneiric", "compiler", "runtime", "schemas", "tests", "build", "config"})
#: What the Cloud Run image needs besides oneiric itself (the repository's requirements.txt pins the same).
RUNTIME_PINS = ("bottle==0.13.4", "google-cloud-tasks==2.26.0")
#: The interpreter the buildpack installs (.python-version).
PYTHON_VERSION = "3.11"
_PACKAGE = re.compile(r"^[a-z_][a-z0-9_]*$")
_SERVICE = re.compile(r"^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$")
_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")


class InitError(Exception):
    """An option cannot make a valid project; the message names the option and what it accepts."""


@dataclass(frozen=True)
class InitOptions:
    directory: Path
    package: str | None = None
    service: str | None = None
    project_id: str = "my-gcp-project"
    region: str = "us-central1"


def package_name(directory: Path) -> str:
    """`My Service-2` -> `my_service_2`: the directory's name as a Python package name."""
    name = re.sub(r"[^a-z0-9_]+", "_", directory.resolve().name.lower()).strip("_") or "app"
    return f"svc_{name}" if name[0].isdigit() else name


def _checked(options: InitOptions) -> dict[str, str]:
    package = options.package or package_name(options.directory)
    service = options.service or package.replace("_", "-")
    if not _PACKAGE.match(package) or keyword.iskeyword(package) or package in RESERVED_PACKAGES:
        raise InitError(f"--package {package!r} is not usable: a lowercase Python identifier that is not one of "
                        f"{', '.join(sorted(RESERVED_PACKAGES))}")
    if not _SERVICE.match(service):
        raise InitError(f"--service {service!r} is not a Cloud Run service name (lowercase letters, digits and "
                        "hyphens, starting with a letter, at most 49 characters)")
    if not _PROJECT.match(options.project_id):
        raise InitError(f"--project-id {options.project_id!r} is not a Google Cloud project id")
    if not _REGION.match(options.region):
        raise InitError(f"--region {options.region!r} is not a region name like us-central1")
    project = options.project_id
    return {
        "package": package, "service": service, "project_id": project, "region": options.region,
        # the URL Cloud Run gives the service; PROJECT_NUMBER is yours (gcloud projects describe)
        "service_url": f"https://{service}-PROJECT_NUMBER.{options.region}.run.app",
        "tasks_account": f"tasks-invoker@{project}.iam.gserviceaccount.com",
        "runtime_account": f"{service}@{project}.iam.gserviceaccount.com"[:100],
    }


def plan(options: InitOptions) -> dict[Path, bytes]:
    """Every file `init` writes, by path under the directory, with its bytes."""
    values = _checked(options)
    package = values["package"]
    templated = {
        "config/default.toml": "default.toml.j2",
        "config/serverless.toml": "serverless.toml.j2",
        "deployment/manifests/app.yaml": "app.yaml.j2",
        f"{package}/__init__.py": "package_init.py.j2",
        f"{package}/tasks.py": "tasks.py.j2",
        f"{package}/store.py": "store.py.j2",
        "requirements.txt": "requirements.txt.j2",
        ".gitignore": "gitignore.j2",
        "tests/test_config_review.py": "test_config_review.py.j2",
        "README.md": "README.md.j2",
    }
    files: dict[Path, bytes] = {}
    for rel, template in templated.items():
        text = render_template(f"init/{template}", None, version=VERSION, runtime_pins=RUNTIME_PINS, **values)
        files[options.directory / rel] = text.encode("utf-8")
    for target in ("Procfile", "Procfile.cloudrun"):  # the template `oneiric procfile --check` renders
        text = render_template("Procfile.j2", None, profile="serverless", no_remote=True, target=target,
                               artifact="build/serverless_profile.json", digest="")
        files[options.directory / target] = text.encode("utf-8")
    files[options.directory / ".python-version"] = f"{PYTHON_VERSION}\n".encode()
    files[options.directory / ".env"] = (
        "# Local secrets for the default profile ([secrets] env_file), made by oneiric init. Never commit this.\n"
        f"ONEIRIC_SECRET_TASKS_HMAC_KEY={secrets.token_hex(32)}\n").encode()
    return files


def conflicts(files: dict[Path, bytes]) -> list[Path]:
    """The planned files that already exist (init refuses to overwrite any of them)."""
    return sorted(path for path in files if path.exists() or path.is_symlink())


def write(files: dict[Path, bytes]) -> None:
    """Create each file exclusively (a file that appears meanwhile is not overwritten); `.env` is 0600."""
    import os

    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = 0o600 if path.name == ".env" else 0o644
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
