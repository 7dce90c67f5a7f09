"""Fixtures for the workflow tests: a fake `Runtime` (tests/support/fake_runtime.py), a recording HTTP server
and the Cloud Tasks emulator."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.support.env import free_port, wait_until
from tests.support.fake_runtime import FakeRuntime


@pytest.fixture
def fake_rt(tmp_path: Path) -> Iterator[FakeRuntime]:
    from runtime.workflows.service import stop

    rt = FakeRuntime(tmp_path)
    yield rt
    stop(rt)


class Headers(dict):
    """Received headers, looked up case-insensitively (urllib sends `X-cloudtasks-taskname`)."""

    def __init__(self, items: Any = ()) -> None:
        super().__init__((str(k).lower(), v) for k, v in items)

    def __getitem__(self, key: str) -> Any:
        return super().__getitem__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        return super().__contains__(str(key).lower())


class Recorder:
    """A loopback HTTP server that records POSTs and answers from a script of (status, headers, body)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[tuple[int, dict[str, str], bytes]] = []
        self.handler: Callable[[bytes, dict[str, str]], tuple[int, dict[str, str], bytes]] | None = None
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = Headers(self.headers.items())
                rec.requests.append({"path": self.path, "headers": headers, "body": body, "at": time.time()})
                if rec.handler is not None:
                    status, extra, out = rec.handler(body, headers)
                elif rec.script:
                    status, extra, out = rec.script.pop(0)
                else:
                    status, extra, out = 200, {}, b"{}"
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/tasks/workflow"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.close()


@pytest.fixture
def emulator() -> Iterator[tuple[int, Any]]:
    """The Cloud Tasks emulator in process on a free loopback port, plus an official client over plaintext gRPC."""
    import grpc
    from gcloud_tasks_emulator.server import create_server
    from google.cloud import tasks_v2
    from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

    port = free_port()
    srv = create_server("127.0.0.1", port, max_retries=3)
    srv.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    wait_until(lambda: _grpc_ready(client), timeout=10)
    yield port, client
    channel.close()
    srv.stop()


def _grpc_ready(client: Any) -> bool:
    try:
        client.list_queues(parent="projects/p/locations/l", timeout=1)
        return True
    except Exception:
        return False


def create_queue(client: Any, project: str, location: str, queue: str) -> str:
    parent = f"projects/{project}/locations/{location}"
    name = f"{parent}/queues/{queue}"
    client.create_queue(parent=parent, queue={"name": name})
    return name
