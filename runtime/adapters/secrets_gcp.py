"""Secrets provider `gcp.secret_manager` (alias `gcp`): Google Secret Manager over gRPC.

The google-cloud-secret-manager client costs about 330 ms to import, so this
module imports it only inside `activate()`; importing this module does no work.
"""

from __future__ import annotations

import os
import re
import threading
import time
from typing import Any, Iterable, Mapping

from runtime.adapters.base import (
    AdapterContext,
    AdapterError,
    SecretAccessError,
    SecretNotFoundError,
    SecretsAdapter,
    SecretValue,
)

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_PATH_RE = re.compile(r"^projects/([^/]+)/secrets/([A-Za-z0-9_-]{1,255})$")
_VERSION_RE = re.compile(r"^([0-9]+|latest)$")

#: Most secrets fetched at once; each call is one HTTP/2 stream on the same channel.
MAX_PREFETCH_WORKERS = 16
#: While Secret Manager is down, an expired value is served this long before the next attempt,
#: so requests do not each wait out a deadline.
STALE_RETRY_SECONDS = 5.0

_CREDENTIALS_HELP = (
    "On Cloud Run the service account is used: grant it roles/secretmanager.secretAccessor. "
    "Locally, run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS "
    "to a key file; for a local emulator, set [secrets] emulator_host"
)


def _crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of `data`, to check `SecretPayload.data_crc32c` without google-crc32c."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


class SecretUnavailableError(SecretAccessError):
    """Secret Manager did not answer (UNAVAILABLE, deadline, credentials refresh); may heal by itself."""


class _Entry:
    """One cached value, or the reason the last fetch failed."""

    __slots__ = ("value", "resolved", "fetched_at", "error", "stale_until")

    def __init__(self, value: SecretValue | None, resolved: str | None, fetched_at: float,
                 error: AdapterError | None = None, stale_until: float | None = None) -> None:
        self.value = value
        self.resolved = resolved  # the version number the service answered with ("3" for "latest")
        self.fetched_at = fetched_at
        self.error = error
        #: set while the service is down: serve this expired value without asking until then
        self.stale_until = stale_until


class SecretManagerSecrets(SecretsAdapter):
    """Secrets from Google Secret Manager, prefetched at cold start and cached with a TTL.

    Settings (schemas/providers/gcp.secret_manager.json): `project_id`,
    `default_version` (used when `get()` is called without a version),
    `cache_ttl_seconds`, `timeout_seconds` (per call), `emulator_host`
    (`host:port` of a plaintext gRPC emulator; anonymous, no credentials).
    Without `emulator_host` the client uses Application Default Credentials,
    on Cloud Run the service account, which needs
    `roles/secretmanager.secretAccessor`.

    Referenced secrets: the runtime passes every reference of the profile
    artifact as ``context.extra["secret_refs"]``, a list of ``(name, version)``
    pairs; `version` is ``"latest"``, a version number, or ``None`` (or ``""``)
    for an unpinned reference, which then takes `default_version`. `activate()`
    fetches all of them concurrently (one round trip for N secrets), and
    `health()` / `readiness()` report on them.

    - `activate()` raises `AdapterError` only when the client cannot be built
      (no credentials); a secret that cannot be fetched is recorded and shows
      in `health()`, and `get()` tries it again.
    - `get(name, version)` serves from the cache for `cache_ttl_seconds`, then
      refetches (rotation). A failed fetch is never cached: the next call asks
      again, so an outage heals by itself. While the service is unavailable an
      expired value keeps being served, asking again every
      `STALE_RETRY_SECONDS` (never past a NOT_FOUND or PERMISSION_DENIED
      answer; `readiness()` never counts a stale value). `invalidate(name)`
      drops a value whose use failed (e.g. a rejected key) so the next `get()`
      refetches it.
    - Errors: NOT_FOUND -> `SecretNotFoundError`; PERMISSION_DENIED ->
      `SecretAccessError("permission denied ...")`; UNAVAILABLE or a deadline
      -> `SecretAccessError("unavailable ...")`. No message, repr or log line
      ever holds a secret value.
    """

    name = "gcp.secret_manager"

    def __new__(cls, settings: Mapping[str, Any], **kwargs: Any) -> "SecretsAdapter":
        """`delivery = "mounted"`: Cloud Run mounted the values; read them without the SDK (secrets_mounted)."""
        if cls is SecretManagerSecrets and (settings or {}).get("delivery") == "mounted":
            from runtime.adapters.secrets_mounted import MountedSecrets

            return MountedSecrets(settings, **kwargs)
        return super().__new__(cls)

    def __init__(self, settings: Mapping[str, Any], *, secrets: SecretsAdapter | None = None,
                 context: AdapterContext | None = None) -> None:
        super().__init__(settings, secrets=secrets, context=context)
        self.project_id = str(self.settings.get("project_id") or "")
        self.default_version = str(self.settings.get("default_version") or "latest")
        self.cache_ttl = float(self.settings.get("cache_ttl_seconds", 300))
        self.timeout = float(self.settings.get("timeout_seconds", 10))
        self.emulator_host = self.settings.get("emulator_host") or None
        if not self.project_id:
            raise AdapterError("gcp.secret_manager: setting project_id is required ([secrets] project_id)")
        if not _VERSION_RE.match(self.default_version):
            raise AdapterError(f"gcp.secret_manager: default_version {self.default_version!r} "
                               "must be a version number or 'latest'")
        self._client: Any = None
        self._api: Any = None  # google.api_core.exceptions, once imported
        self._auth_error: Any = None  # google.auth.exceptions.GoogleAuthError, once imported
        self._activation_error: AdapterError | None = None
        self._cache: dict[tuple[str, str], _Entry] = {}
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        #: milliseconds the cold-start prefetch took, for logs and benchmarks
        self.prefetch_ms: float | None = None

    def __repr__(self) -> str:
        return f"SecretManagerSecrets(project_id={self.project_id!r}, emulator_host={self.emulator_host!r})"

    # ------------------------------------------------------------------ lifecycle

    def activate(self) -> None:
        """Build the client (importing the SDK now), then prefetch every referenced secret concurrently."""
        if self._client is None:
            try:
                self._client = self._build_client()
            except AdapterError as exc:
                self._activation_error = exc
                raise
        refs = self.references()
        started = time.perf_counter()
        self._fetch_many(refs, allow_stale=False)
        self.prefetch_ms = (time.perf_counter() - started) * 1000
        failed = sum(1 for ref in refs if self._cache.get(ref) is None or self._cache[ref].error)
        self._log("INFO" if not failed else "WARNING",
                  f"secrets prefetched: {len(refs) - failed} of {len(refs)} resolved",
                  provider=self.name, elapsed_ms=round(self.prefetch_ms, 1))

    def _build_client(self) -> Any:
        # gRPC's C core otherwise writes INFO lines (e.g. "Got goaway") to stderr, which Cloud Run
        # files as errors; an operator's own GRPC_VERBOSITY wins.
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
        from google.api_core import exceptions as api_exceptions
        from google.auth import exceptions as auth_exceptions
        from google.cloud.secretmanager_v1.services.secret_manager_service import SecretManagerServiceClient

        self._api = api_exceptions
        self._auth_error = auth_exceptions.GoogleAuthError
        if self.emulator_host:
            import grpc
            from google.cloud.secretmanager_v1.services.secret_manager_service.transports.grpc import (
                SecretManagerServiceGrpcTransport,
            )

            channel = grpc.insecure_channel(self.emulator_host)
            return SecretManagerServiceClient(transport=SecretManagerServiceGrpcTransport(channel=channel))
        try:
            return SecretManagerServiceClient()
        except auth_exceptions.DefaultCredentialsError as exc:
            path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
            cause = f" (GOOGLE_APPLICATION_CREDENTIALS={path} could not be used: {exc})" if path else ""
            raise AdapterError(f"gcp.secret_manager: no Application Default Credentials found{cause}. "
                               f"{_CREDENTIALS_HELP}") from None

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.transport.close()
        with self._lock:
            self._cache.clear()

    # ------------------------------------------------------------------ lookups

    def references(self) -> list[tuple[str, str]]:
        """The referenced (name, version) pairs from the context, versions defaulted, without duplicates."""
        raw = (self.context.extra.get("secret_refs") if self.context is not None else None) or ()
        refs: list[tuple[str, str]] = []
        for item in raw:
            name, version = item if isinstance(item, (tuple, list)) else (item, None)
            key = (str(name), str(version or self.default_version))
            if key not in refs:
                refs.append(key)
        return refs

    def get(self, name: str, version: str | None = None) -> SecretValue:
        """The value of `name` at `version` (default `default_version`), cached for `cache_ttl_seconds`."""
        return self._get((name, version or self.default_version), allow_stale=True)

    def invalidate(self, name: str | None = None) -> None:
        """Forget cached values (of `name`, or all), so the next `get()` asks the service again."""
        with self._lock:
            for key in [k for k in self._cache if name is None or k[0] == name]:
                del self._cache[key]

    def resolved_version(self, name: str, version: str | None = None) -> str | None:
        """The version number last served for (name, version), e.g. "3" for "latest"; None if unknown."""
        entry = self._cache.get((name, version or self.default_version))
        return entry.resolved if entry is not None and entry.error is None else None

    def _get(self, key: tuple[str, str], *, allow_stale: bool) -> SecretValue:
        entry = self._usable(key, allow_stale)
        if entry is not None:
            return entry.value  # type: ignore[return-value]
        with self._key_lock(key):  # one fetch per key at a time; late arrivals reuse its answer
            entry = self._usable(key, allow_stale)
            if entry is not None:
                return entry.value  # type: ignore[return-value]
            entry = self._cache.get(key)
            stale = entry if entry is not None and entry.error is None else None
            try:
                fresh = self._fetch(*key)
            except SecretUnavailableError as exc:
                if allow_stale and stale is not None:
                    self._log("WARNING", f"secret {self._label(key)}: {exc}; serving the cached value "
                              f"for {STALE_RETRY_SECONDS:g}s", provider=self.name)
                    self._store(key, _Entry(stale.value, stale.resolved, stale.fetched_at,
                                            stale_until=time.monotonic() + STALE_RETRY_SECONDS))
                    return stale.value  # type: ignore[return-value]
                self._store(key, _Entry(None, None, time.monotonic(), exc))
                raise
            except AdapterError as exc:
                self._store(key, _Entry(None, None, time.monotonic(), exc))
                raise
            self._store(key, fresh)
            return fresh.value  # type: ignore[return-value]

    def _usable(self, key: tuple[str, str], allow_stale: bool) -> _Entry | None:
        """The cached entry if it may be served without asking: fresh, or (for get) stale during an outage."""
        entry = self._cache.get(key)
        if entry is None or entry.error is not None:
            return None
        if entry.stale_until is not None:
            return entry if allow_stale and time.monotonic() < entry.stale_until else None
        return entry if self._fresh(entry) else None

    def _fresh(self, entry: _Entry) -> bool:
        return time.monotonic() - entry.fetched_at < self.cache_ttl

    def _store(self, key: tuple[str, str], entry: _Entry) -> None:
        with self._lock:
            self._cache[key] = entry

    def _key_lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def _fetch_many(self, refs: list[tuple[str, str]], *, allow_stale: bool) -> dict[tuple[str, str], Any]:
        """`get` every ref concurrently; returns ref -> SecretValue or the AdapterError it raised."""

        def one(key: tuple[str, str]) -> Any:
            try:
                return self._get(key, allow_stale=allow_stale)
            except AdapterError as exc:
                return exc

        if len(refs) <= 1:
            return {key: one(key) for key in refs}
        from concurrent.futures import ThreadPoolExecutor  # pulls in logging: not at import time

        with ThreadPoolExecutor(max_workers=min(MAX_PREFETCH_WORKERS, len(refs)),
                                thread_name_prefix="secret-fetch") as pool:
            return dict(zip(refs, pool.map(one, refs)))

    # ------------------------------------------------------------------ the wire

    def _resource(self, name: str, version: str) -> str:
        if _PATH_RE.match(name):
            path = name
        elif _NAME_RE.match(name):
            path = f"projects/{self.project_id}/secrets/{name}"
        else:
            raise AdapterError(f"gcp.secret_manager: {name!r} is not a secret name "
                               "(letters, digits, '-' and '_', or projects/P/secrets/NAME)")
        if not _VERSION_RE.match(version):
            raise AdapterError(f"gcp.secret_manager: secret {name}: version {version!r} "
                               "is not a version number or 'latest'")
        return f"{path}/versions/{version}"

    def _fetch(self, name: str, version: str) -> _Entry:
        resource = self._resource(name, version)
        if self._client is None:
            raise self._activation_error or SecretAccessError(
                f"gcp.secret_manager: secret {self._label((name, version))}: provider not activated")
        api = self._api
        label = self._label((name, version))
        try:
            response = self._client.access_secret_version(
                request={"name": resource}, retry=None, timeout=self.timeout)
        except api.NotFound:
            raise SecretNotFoundError(f"secret {label} not found in project {self.project_id} "
                                      f"({resource})") from None
        except api.PermissionDenied:
            raise SecretAccessError(
                f"permission denied reading secret {label} ({resource}): grant the service account "
                "roles/secretmanager.secretAccessor on it") from None
        except (api.ServiceUnavailable, api.DeadlineExceeded, api.TooManyRequests,
                api.InternalServerError) as exc:
            raise SecretUnavailableError(
                f"unavailable: Secret Manager did not answer for secret {label} ({type(exc).__name__}, "
                f"timeout {self.timeout:g}s); the next use retries") from None
        except api.Unauthenticated:
            raise SecretAccessError(f"unauthenticated reading secret {label}: the credentials were "
                                    f"rejected. {_CREDENTIALS_HELP}") from None
        except api.FailedPrecondition:
            raise SecretAccessError(f"secret {label} ({resource}) is disabled or destroyed") from None
        except api.GoogleAPICallError as exc:
            raise SecretAccessError(f"error reading secret {label}: {type(exc).__name__} "
                                    f"({exc.code})") from None
        except self._auth_error as exc:  # token refresh failed: metadata server or network
            raise SecretUnavailableError(f"unavailable: could not get an access token for secret {label} "
                                         f"({type(exc).__name__}). {_CREDENTIALS_HELP}") from None
        except Exception as exc:  # never let an unexpected error carry SDK internals upward
            raise SecretAccessError(f"error reading secret {label}: {type(exc).__name__}") from None
        payload = response.payload
        data = bytes(payload.data)
        if "data_crc32c" in payload and payload.data_crc32c != _crc32c(data):
            raise SecretUnavailableError(f"unavailable: secret {label}: payload checksum mismatch; "
                                         "the next use refetches")
        try:
            value = SecretValue(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise SecretAccessError(f"secret {label}: payload is not UTF-8 text") from None
        resolved = response.name.rsplit("/versions/", 1)[-1] if response.name else version
        return _Entry(value, resolved, time.monotonic())

    # ------------------------------------------------------------------ readiness

    def readiness(self, refs: Iterable[tuple[str, str]] | None = None) -> dict[str, Any]:
        """`{provider, status, detail, references, missing}` for `refs` (default: the context's references).

        `status` is ready only when the provider answers and every reference
        resolves; `missing` names the absent ones; `error` gives the cause.
        Values within their TTL count as an answer; nothing stale does.
        """
        keys = self.references() if refs is None else [(n, str(v or self.default_version)) for n, v in refs]
        if self._activation_error is not None:
            return {"provider": self.name, "status": "error", "detail": str(self._activation_error),
                    "references": [self._reference(key, "error") for key in keys], "missing": []}
        results = self._fetch_many(keys, allow_stale=False)
        references, missing, errors = [], [], []
        for key in keys:
            outcome = results[key]
            if isinstance(outcome, SecretNotFoundError):
                missing.append(self._label(key))
                references.append(self._reference(key, "missing"))
            elif isinstance(outcome, AdapterError):
                errors.append(str(outcome))
                references.append(self._reference(key, "error"))
            elif isinstance(outcome, SecretValue) and outcome.problem():
                errors.append(f"secret {self._label(key)!r}: the value {outcome.problem()}")
                references.append(self._reference(key, "error"))
            else:
                references.append(self._reference(key, "ready"))
        if errors:
            status, detail = "error", "; ".join(errors)
        elif missing:
            status, detail = "missing", "missing: " + ", ".join(missing)
        else:
            status, detail = "ready", None
        return {"provider": self.name, "status": status, "detail": detail,
                "references": references, "missing": missing}

    def health(self) -> dict[str, Any]:
        """The provider's own health: `ready` when Secret Manager answers with these credentials.

        A secret that is absent or denied is a readiness matter (`readiness()`, the
        health output's `secrets` block), not a provider failure; an outage, a
        deadline or missing credentials make the provider `error`.
        """
        if self._activation_error is not None:
            return {"provider": self.name, "status": "error", "detail": str(self._activation_error)}
        if self._client is None:
            return {"provider": self.name, "status": "error", "detail": "gcp.secret_manager: not activated"}
        refs = self.references()
        outcomes = self._fetch_many(refs, allow_stale=False)
        down = [exc for exc in outcomes.values() if isinstance(exc, SecretUnavailableError)]
        if down:
            return {"provider": self.name, "status": "error", "detail": str(down[0])}
        resolved = sum(1 for value in outcomes.values() if isinstance(value, SecretValue))
        return {"provider": self.name, "status": "ready",
                "detail": f"project {self.project_id}: {resolved} of {len(refs)} references resolve"}

    def _reference(self, key: tuple[str, str], status: str) -> dict[str, Any]:
        return {"name": key[0], "version": key[1], "resolved_version": self.resolved_version(*key),
                "status": status}

    @staticmethod
    def _label(key: tuple[str, str]) -> str:
        name, version = key
        return name if version == "latest" else f"{name}@{version}"

    def _log(self, severity: str, message: str, **fields: Any) -> None:
        log = getattr(self.context, "log", None)
        if callable(log):
            log(severity, message, **fields)


