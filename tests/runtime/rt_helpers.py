"""Helpers for the runtime suite: subprocesses, HTTP, compiled and hand-built artifacts."""


from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

from runtime.canonical import compute_digest, pretty_bytes

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
ONEIRIC = str(Path(PYTHON).with_name("oneiric"))
if str(ROOT) not in sys.path:  # tests.fakes lives beside the suites
    sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------- environment and processes

#: Bytecode for the subprocesses, outside the work tree: with PYTHONDONTWRITEBYTECODE every child
#: would recompile the runtime on each start.
PYCACHE = Path(tempfile.gettempdir()) / f"oneiric-runtime-tests-pycache-{os.getuid()}"


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without ONEIRIC_*/PORT, cloud-free, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith("ONEIRIC_") and k not in ("PORT", "PYTHONDONTWRITEBYTECODE")}
    env.update({
        "NO_GCE_CHECK": "true",
        "GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/oneiric-test-adc.json",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPYCACHEPREFIX": str(PYCACHE),
    })
    env.update(extra)
    return env


def run_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 30,
            python: str = PYTHON) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-m", "oneiric.cli", *args], cwd=cwd, env=env or clean_env(),
                          capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 5.0) -> tuple[int, dict[str, str], Any]:
    """(status, headers, parsed JSON or text) for one request; HTTP errors are answers, not exceptions."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            status, hdrs, raw = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        status, hdrs, raw = exc.code, dict(exc.headers), exc.read()
    try:
        data: Any = json.loads(raw)
    except ValueError:
        data = raw.decode("utf-8", "replace")
    return status, hdrs, data


class Orchestrator:
    """`oneiric orchestrate` as a child process; stdout lines are collected and parsed as JSON where possible."""

    def __init__(self, cwd: Path, args: list[str] = (), env: dict[str, str] | None = None,
                 python: str = PYTHON, http_port: int | None = 0) -> None:
        argv = [python, "-m", "oneiric.cli", *args]
        if "orchestrate" not in argv:
            argv.append("orchestrate")
        if http_port is not None:
            argv += ["--http-host", "127.0.0.1", "--http-port", str(http_port)]
        self.argv = argv
        self.env = env if env is not None else clean_env()
        self.env.setdefault("ONEIRIC_LOGGING__FORMAT", "json")
        self.proc = subprocess.Popen(argv, cwd=cwd, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.records: list[dict] = []
        self._new = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.stderr = ""
        self.port: int | None = None

    def _read(self) -> None:
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self._new:
                self.lines.append(line)
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if isinstance(record, dict):
                    self.records.append(record)
                self._new.notify_all()

    def wait_log(self, message: str | re.Pattern, timeout: float = 10.0, after: int = 0) -> dict:
        """The first JSON record (from index `after` on) whose message equals (or matches) `message`."""
        deadline = time.monotonic() + timeout
        with self._new:
            while True:
                for record in self.records[after:]:
                    text = str(record.get("message", ""))
                    if (text == message) if isinstance(message, str) else message.search(text):
                        return record
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"orchestrate exited {self.proc.returncode} before {message!r}:\n"
                                         + "\n".join(self.lines) + self._drain_stderr())
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no log line {message!r} within {timeout}s:\n" + "\n".join(self.lines))
                self._new.wait(min(remaining, 0.1))

    def _drain_stderr(self) -> str:
        try:
            return "\nstderr:\n" + (self.proc.stderr.read() if self.proc.poll() is not None else "")
        except ValueError:
            return ""

    def wait_ready(self, timeout: float = 15.0) -> "Orchestrator":
        listening = self.wait_log("listening", timeout)
        self.port = int(listening["port"])
        self.wait_log("ready", timeout)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **kw: Any) -> tuple[int, dict[str, str], Any]:
        return http("GET", self.url + path, **kw)

    def terminate(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(5)
        self._reader.join(5)
        self.stderr = self.proc.stderr.read()
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except Exception:
                pass


# ---------------------------------------------------------------- compiled reference project

def compile_project(project: Path) -> None:
    result = subprocess.run([ONEIRIC, "compile", "--project-dir", str(project)], capture_output=True, text=True,
                            timeout=60, env=clean_env())
    assert result.returncode == 0, result.stdout + result.stderr


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

[runtime.supervisor]
poll_interval = 0.2

[logging]
format = "json"
project_id = "oneiric-demo"
"""


def make_embedded_project(root: Path, settings_text: str = EMBEDDED_SERVERLESS) -> Path:
    """The reference manifests with serverless settings on embedded defaults (env secrets, local queue)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "deployment", root / "deployment")
    (root / "config").mkdir()
    (root / "config" / "serverless.toml").write_text(settings_text)
    compile_project(root)
    return root


# ---------------------------------------------------------------- hand-built artifacts

BASE_SETTINGS: dict[str, Any] = {
    "http": {"port": 8080, "tasks_auth": "none", "hmac_key": None, "oidc_audience": None,
             "oidc_service_account": None, "allow_unauthenticated_tasks": True, "max_body_bytes": 1048576,
             "shutdown_grace_seconds": 8, "header_timeout_seconds": 10},
    "logging": {"level": "INFO", "format": "json", "project_id": None},
    "remote": {"enabled": False, "manifest_url": None, "manifest_sha256": None, "allow_file_uris": False,
               "allowed_file_uri_roots": [], "refresh_interval": 300, "max_bytes": 5242880},
    "runtime": {"cache_dir": ".oneiric_cache", "supervisor": {"enabled": True, "poll_interval": 0.2, "windows": []}},
    "secrets": {"provider": "env", "prefix": "ONEIRIC_SECRET_"},
    "security": {"factory_allowlist": ["runtime.adapters", "oneiric.demo"]},
    "workflows": {"options": {"queue_category": "queue"}},
}

_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}


def _env_keys(settings: dict[str, Any]) -> list[dict[str, Any]]:
    keys = []

    def walk(node: dict, path: list[str]) -> None:
        for name, value in node.items():
            if isinstance(value, dict):
                walk(value, path + [name])
                continue
            full = path + [name]
            env = "ONEIRIC_" + "_".join(p.upper() for p in full[:-1]) + "__" + full[-1].upper()
            typ = _TYPES.get(type(value), "string")
            keys.append({"name": env, "path": ".".join(full), "type": typ,
                         "secret_bound": isinstance(value, str) and value.startswith("secret://")})

    walk(settings, [])
    return sorted(keys, key=lambda k: k["name"])


def write_artifact(path: Path, obj: dict[str, Any]) -> dict[str, Any]:
    obj = dict(obj)
    obj["digest"] = compute_digest(obj)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pretty_bytes(obj))
    return obj


def build_artifacts(project: Path, *, profile: str = "serverless", settings: dict[str, Any] | None = None,
                    selections: list[dict[str, Any]] | None = None, toggles: dict[str, bool] | None = None,
                    settings_text: str = "[profile]\nname = \"x\"\n", manifest_digest: str | None = None,
                    secrets: list[dict[str, Any]] | None = None) -> Path:
    """A valid profile + manifest pair per docs/artifacts.md, written with runtime.canonical.

    For what the compiler would refuse to produce (e.g. a profile pinned to another manifest,
    factories outside the repo); returns the profile artifact path.
    """
    import copy

    settings = copy.deepcopy(settings or BASE_SETTINGS)
    config = project / "config" / f"{profile}.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(settings_text)
    base = "serverless" if profile == "serverless" else "default"
    toggles = toggles or ({"watchers_enabled": False, "remote_enabled": False, "inline_manifest_only": True,
                           "supervisor_enabled": True} if base == "serverless" else
                          {"watchers_enabled": True, "remote_enabled": True, "inline_manifest_only": False,
                           "supervisor_enabled": True})
    if selections is None:
        selections = [{"domain": "adapter", "key": "secrets", "provider": "env",
                       "factory": "runtime.adapters.secrets_env:EnvSecrets", "settings": {"prefix": "ONEIRIC_SECRET_"},
                       "origin": "builtin", "reason": "default", "required": True, "settings_path": "secrets"}]
    manifest = write_artifact(project / "build" / f"{profile}_manifest.json", {
        "compiler_version": "test", "entries": [], "format": "oneiric.manifest/1",
        "inputs": [], "sources": ["test"]})
    write_artifact(project / "build" / f"{profile}_profile.json", {
        "compiler_version": "test",
        "env_keys": _env_keys(settings),
        "format": "oneiric.profile/1",
        "inputs": [{"kind": "settings", "path": f"config/{profile}.toml",
                    "sha256": hashlib.sha256(config.read_bytes()).hexdigest()}],
        "manifest": {"path": f"{profile}_manifest.json", "digest": manifest_digest or manifest["digest"]},
        "profile": {"name": profile, "base": base, "extends": [base], "toggles": toggles},
        "provenance": {"runtime.supervisor.enabled": f"profile:{base}"},
        "secrets": secrets or [],
        "selections": selections,
        "settings": settings,
    })
    return project / "build" / f"{profile}_profile.json"


def flip_byte(path: Path, needle: bytes) -> None:
    """Change the byte right after the first occurrence of `needle` (a letter inside a string value,
    so the file stays valid JSON and only the digest can tell)."""
    data = bytearray(path.read_bytes())
    at = data.index(needle) + len(needle)
    data[at] = ord("X") if data[at] != ord("X") else ord("Y")
    path.write_bytes(bytes(data))
