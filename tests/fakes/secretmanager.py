"""A gRPC fake of `google.cloud.secretmanager.v1.SecretManagerService` for tests.

Built with `grpc.method_handlers_generic_handler` and the client library's own
message classes, so the official `SecretManagerServiceClient` talks to it over
a plaintext channel exactly as it talks to the real service. It listens on a
free 127.0.0.1 port only.

Implemented over the wire: CreateSecret, AddSecretVersion, GetSecret,
AccessSecretVersion (with the `latest` alias). Status codes follow the real
service: NOT_FOUND for an absent secret or version, PERMISSION_DENIED for a
secret the caller may not access (`deny()`) or a foreign project,
FAILED_PRECONDITION for a disabled version, ALREADY_EXISTS on a duplicate
CreateSecret. Faults are injectable (`fail()`): a status code for the next N
calls, or until `clear_faults()`.

It also counts calls per method and the peak number of AccessSecretVersion
calls in flight at once (`max_inflight`), with an optional per-call latency,
so tests can prove that prefetching runs concurrently.

Test-side helpers change the state directly, without a round trip: `put`
(create + add versions), `deny` / `allow`, `disable`, `fail` / `clear_faults`,
`corrupt_checksums`, `latency`, `reset` (for a fake shared by several tests).
`access_log` lists the version names asked for, in order.

    with FakeSecretManager("demo-project") as fake:
        fake.put("db-password", "v1", "v2")
        settings = {"project_id": "demo-project", "emulator_host": fake.host}
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from google.cloud.secretmanager_v1 import types

SERVICE = "google.cloud.secretmanager.v1.SecretManagerService"

_SECRET_RE = re.compile(r"^projects/([^/]+)/secrets/([A-Za-z0-9_-]{1,255})$")
_VERSION_RE = re.compile(r"^projects/([^/]+)/secrets/([A-Za-z0-9_-]{1,255})/versions/([^/]+)$")


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as the real service puts in `SecretPayload.data_crc32c`."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


@dataclass
class _Secret:
    versions: list[bytes] = field(default_factory=list)  # version N is versions[N - 1]
    disabled: set[int] = field(default_factory=set)
    create_time: float = field(default_factory=time.time)


@dataclass
class _Fault:
    code: grpc.StatusCode
    remaining: int | None  # None: until cleared
    methods: frozenset[str] | None  # None: every method
    message: str


class FakeSecretManager:
    """The fake service plus its server; use `start()` / `stop()` or as a context manager."""

    def __init__(self, project: str = "demo-project", *, latency: float = 0.0, workers: int = 32) -> None:
        #: the project this fake serves; other projects answer PERMISSION_DENIED
        self.project = project
        #: seconds each AccessSecretVersion call waits before answering
        self.latency = latency
        #: corrupt the checksum of returned payloads (integrity-check tests)
        self.corrupt_checksums = False
        self.calls: Counter[str] = Counter()
        self.access_log: list[str] = []  # requested version names, in arrival order
        self.inflight = 0
        self.max_inflight = 0
        self._secrets: dict[str, _Secret] = {}
        self._denied: set[str] = set()
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._workers = workers
        self._server: grpc.Server | None = None
        self.port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, the value for the provider's `emulator_host`."""
        if self.port is None:
            raise RuntimeError("fake not started")
        return f"127.0.0.1:{self.port}"

    def start(self) -> "FakeSecretManager":
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=self._workers))
        server.add_generic_rpc_handlers((self._handler(),))
        self.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None)
            self._server = None

    def __enter__(self) -> "FakeSecretManager":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ test-side helpers

    def put(self, name: str, *values: str | bytes) -> int:
        """Create secret `name` if absent and add one version per value; return the last version number."""
        with self._lock:
            secret = self._secrets.setdefault(self._secret_path(name), _Secret())
            for value in values:
                secret.versions.append(value.encode() if isinstance(value, str) else bytes(value))
            return len(secret.versions)

    def deny(self, name: str) -> None:
        """Answer PERMISSION_DENIED for every call about secret `name`."""
        with self._lock:
            self._denied.add(self._secret_path(name))

    def allow(self, name: str) -> None:
        with self._lock:
            self._denied.discard(self._secret_path(name))

    def disable(self, name: str, version: int) -> None:
        """Disable a version: accessing it answers FAILED_PRECONDITION, `latest` skips it."""
        with self._lock:
            self._secrets[self._secret_path(name)].disabled.add(version)

    def fail(self, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE, *, times: int | None = None,
             methods: tuple[str, ...] | None = None, message: str = "injected fault") -> None:
        """Fail the next `times` calls (every call when None, until `clear_faults()`) with `code`."""
        with self._lock:
            self._faults.append(_Fault(code, times, frozenset(methods) if methods else None, message))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        """Forget every secret, denial, fault and counter (for a fake shared by several tests)."""
        with self._lock:
            self._secrets.clear()
            self._denied.clear()
            self._faults.clear()
            self.corrupt_checksums = False
            self.latency = 0.0
        self.reset_counters()

    def reset_counters(self) -> None:
        with self._lock:
            self.calls.clear()
            self.access_log.clear()
            self.max_inflight = 0

    # ------------------------------------------------------------------ service

    def _secret_path(self, name: str) -> str:
        return name if name.startswith("projects/") else f"projects/{self.project}/secrets/{name}"

    def _handler(self) -> grpc.GenericRpcHandler:
        def unary(method: str, request_type, response_type, impl):
            def behaviour(request, context):
                with self._lock:
                    self.calls[method] += 1
                    self._maybe_fault(method, context)
                return impl(request, context)

            return grpc.unary_unary_rpc_method_handler(
                behaviour,
                request_deserializer=request_type.deserialize,
                response_serializer=response_type.serialize,
            )

        return grpc.method_handlers_generic_handler(SERVICE, {
            "CreateSecret": unary("CreateSecret", types.CreateSecretRequest, types.Secret, self._create_secret),
            "AddSecretVersion": unary("AddSecretVersion", types.AddSecretVersionRequest, types.SecretVersion,
                                      self._add_secret_version),
            "GetSecret": unary("GetSecret", types.GetSecretRequest, types.Secret, self._get_secret),
            "AccessSecretVersion": unary("AccessSecretVersion", types.AccessSecretVersionRequest,
                                         types.AccessSecretVersionResponse, self._access_secret_version),
        })

    def _maybe_fault(self, method: str, context: grpc.ServicerContext) -> None:
        """Called with the lock held."""
        for fault in self._faults:
            if fault.methods is not None and method not in fault.methods:
                continue
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
            context.abort(fault.code, fault.message)

    def _check_project(self, project: str, context: grpc.ServicerContext) -> None:
        if project != self.project:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"Permission denied on resource project {project}.")

    def _check_secret(self, path: str, context: grpc.ServicerContext) -> _Secret:
        """Called with the lock held."""
        if path in self._denied:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"Permission 'secretmanager.versions.access' denied for resource '{path}' "
                          "(or it may not exist).")
        secret = self._secrets.get(path)
        if secret is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Secret [{path}] not found or has no versions.")
        return secret

    def _create_secret(self, request: types.CreateSecretRequest, context: grpc.ServicerContext) -> types.Secret:
        match = re.fullmatch(r"projects/([^/]+)", request.parent)
        if not match or not re.fullmatch(r"[A-Za-z0-9_-]{1,255}", request.secret_id):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid parent or secret_id")
        self._check_project(match.group(1), context)
        path = f"{request.parent}/secrets/{request.secret_id}"
        with self._lock:
            if path in self._secrets:
                context.abort(grpc.StatusCode.ALREADY_EXISTS, f"Secret [{path}] already exists.")
            self._secrets[path] = _Secret()
        return types.Secret(name=path, replication=request.secret.replication, labels=request.secret.labels)

    def _add_secret_version(self, request: types.AddSecretVersionRequest,
                            context: grpc.ServicerContext) -> types.SecretVersion:
        match = _SECRET_RE.fullmatch(request.parent)
        if not match:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid parent")
        self._check_project(match.group(1), context)
        with self._lock:
            secret = self._check_secret(request.parent, context)
            secret.versions.append(bytes(request.payload.data))
            number = len(secret.versions)
        return types.SecretVersion(name=f"{request.parent}/versions/{number}",
                                   state=types.SecretVersion.State.ENABLED)

    def _get_secret(self, request: types.GetSecretRequest, context: grpc.ServicerContext) -> types.Secret:
        match = _SECRET_RE.fullmatch(request.name)
        if not match:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid name")
        self._check_project(match.group(1), context)
        with self._lock:
            self._check_secret(request.name, context)
        return types.Secret(name=request.name)

    def _access_secret_version(self, request: types.AccessSecretVersionRequest,
                               context: grpc.ServicerContext) -> types.AccessSecretVersionResponse:
        with self._lock:
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
            self.access_log.append(request.name)
        try:
            if self.latency:
                time.sleep(self.latency)
            match = _VERSION_RE.fullmatch(request.name)
            if not match:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid version name [{request.name}]")
            self._check_project(match.group(1), context)
            path = request.name.rsplit("/versions/", 1)[0]
            wanted = match.group(3)
            with self._lock:
                secret = self._check_secret(path, context)
                enabled = [n for n in range(1, len(secret.versions) + 1) if n not in secret.disabled]
                if wanted == "latest":
                    if not enabled:
                        context.abort(grpc.StatusCode.NOT_FOUND, f"Secret [{path}] has no enabled versions.")
                    number = enabled[-1]
                elif wanted.isdigit() and 1 <= int(wanted) <= len(secret.versions):
                    number = int(wanted)
                    if number in secret.disabled:
                        context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                      f"Secret Version [{path}/versions/{number}] is in DISABLED state.")
                else:
                    context.abort(grpc.StatusCode.NOT_FOUND, f"Secret Version [{request.name}] not found.")
                data = secret.versions[number - 1]
            checksum = crc32c(data) ^ (1 if self.corrupt_checksums else 0)
            return types.AccessSecretVersionResponse(
                name=f"{path}/versions/{number}",
                payload=types.SecretPayload(data=data, data_crc32c=checksum),
            )
        finally:
            with self._lock:
                self.inflight -= 1
