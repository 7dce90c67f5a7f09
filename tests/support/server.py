"""A live `oneiric orchestrate` as a child process on 127.0.0.1, and a real HTTP client for it."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.support.env import PYTHON, clean_env


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
