"""Queue provider `cloudtasks`: Google Cloud Tasks HTTP-target tasks through the official client.

`activate()` only checks the settings: `google.cloud.tasks_v2` is imported and the client built on
first use (`enqueue()` or `health()`), so a cold start does not pay for them before its first 200
(about 40-50 ms here). With `emulator_host`
the client talks plaintext gRPC to that host through an injected insecure
channel and no credentials (the emulator has no auth; passing credentials as
well as a transport raises). Task names come from the run id, so a repeated
enqueue of a run is deduplicated by the service (ALREADY_EXISTS counts as
success); the caller also dedupes locally because the emulator accepts
duplicate names. With `service_account_email` each task carries an OIDC token
for `oidc_audience` (default: `http_target_url`). `health()` reads the queue.
"""

from __future__ import annotations

from typing import Any, Mapping

from runtime.adapters.base import Adapter, AdapterError


class CloudTasksQueue(Adapter):
    name = "cloudtasks"

    def __init__(self, settings: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.project_id = self.settings.get("project_id")
        self.location = self.settings.get("location")
        self.queue = self.settings.get("queue")
        self.target_url = self.settings.get("http_target_url")
        self.service_account_email = self.settings.get("service_account_email")
        self.oidc_audience = self.settings.get("oidc_audience")
        self.deadline = int(self.settings.get("dispatch_deadline_seconds") or 600)
        self.emulator_host = self.settings.get("emulator_host")
        self._client: Any = None
        self._channel: Any = None
        self.queue_path = ""

    def activate(self) -> None:
        """Check the settings; the client is built by the first call that needs it (`_connect`)."""
        missing = [k for k in ("project_id", "location", "queue", "http_target_url") if not self.settings.get(k)]
        if missing:
            raise AdapterError(f"cloudtasks: missing settings {', '.join(missing)}")

    def _connect(self) -> None:
        if self._client is not None:
            return
        self.activate()
        from google.cloud import tasks_v2

        if self.emulator_host:
            import grpc
            from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

            self._channel = grpc.insecure_channel(self.emulator_host)
            client = tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=self._channel))
        else:
            client = tasks_v2.CloudTasksClient()
        self._client = client
        self.queue_path = client.queue_path(self.project_id, self.location, self.queue)

    def bind(self, **_: Any) -> None:
        """Nothing to bind: the target URL is a required setting; signatures come per enqueue."""

    def health(self) -> dict[str, Any]:
        try:
            self._connect()
            from google.api_core import exceptions as gexc

            try:
                queue = self._client.get_queue(name=self.queue_path, timeout=5.0)
            except gexc.NotFound:
                return {"status": "missing", "detail": f"queue {self.queue_path} does not exist"}
            except gexc.GoogleAPICallError as exc:
                return {"status": "error", "detail": f"get_queue {self.queue_path}: {type(exc).__name__}: {exc.message}"}
        except AdapterError as exc:
            return {"status": "error", "detail": str(exc)}
        except Exception as exc:  # credentials, transport
            return {"status": "error", "detail": f"cloudtasks: {type(exc).__name__}: {exc}"}
        state = getattr(getattr(queue, "state", None), "name", str(getattr(queue, "state", "")))
        detail = {"queue": self.queue_path, "state": state, "target": self.target_url}
        return {"status": "ready" if state in ("RUNNING", "STATE_UNSPECIFIED", "") else "degraded", "detail": detail}

    def enqueue(self, *, body: bytes, task_name: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Create the HTTP task; `deduplicated` is True when the service answered ALREADY_EXISTS."""
        self._connect()
        from google.api_core import exceptions as gexc
        from google.protobuf import duration_pb2

        http_request: dict[str, Any] = {
            "http_method": "POST",
            "url": self.target_url,
            "headers": {"Content-Type": "application/json", **dict(headers or {})},
            "body": body,
        }
        if self.service_account_email:
            http_request["oidc_token"] = {"service_account_email": self.service_account_email,
                                          "audience": self.oidc_audience or self.target_url}
        task = {"name": f"{self.queue_path}/tasks/{task_name}", "http_request": http_request,
                "dispatch_deadline": duration_pb2.Duration(seconds=self.deadline)}
        try:
            self._client.create_task(parent=self.queue_path, task=task, timeout=30.0)
        except gexc.AlreadyExists:
            return {"task_name": task_name, "deduplicated": True}
        except gexc.GoogleAPICallError as exc:
            raise AdapterError(f"cloudtasks create_task in {self.queue_path}: {type(exc).__name__}: {exc.message}") from None
        return {"task_name": task_name, "deduplicated": False}

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.transport.close()
            except Exception:
                pass
        if self._channel is not None:
            self._channel.close()
            self._channel = None
