"""Remote refresh (default profile only): fetch a compiled manifest artifact from `[remote] manifest_url`,
verify it, and hand it over. `file://` only inside allowed roots; `https://` only with a sha256 pin."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any, Callable, Mapping

from runtime.model import MANIFEST_FORMAT, ManifestArtifact


class RemoteError(Exception):
    """The manifest URL is refused or its content fails verification; nothing is applied."""


def _file_path(url: str) -> Path:
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise RemoteError(f"{url}: file:// URLs must not name a host")
    return Path(unquote(parts.path))


def check_file_url(url: str, remote: Mapping[str, Any]) -> Path:
    """The resolved local path of a `file://` URL, or RemoteError when it is not allowed.

    Symlinks are resolved before the root check, so a link inside a root pointing outside is refused;
    an empty `allowed_file_uri_roots` allows nothing.
    """
    if not remote.get("allow_file_uris"):
        raise RemoteError(f"{url}: file:// manifest URLs are off; set [remote] allow_file_uris = true")
    roots = [str(r) for r in remote.get("allowed_file_uri_roots") or []]
    if not roots:
        raise RemoteError(f"{url}: [remote] allowed_file_uri_roots is empty, so no file:// URL is allowed")
    try:
        path = _file_path(url).resolve()
        resolved = [Path(root).resolve() for root in roots]
    except (ValueError, OSError) as exc:  # e.g. %00: "embedded null byte" would end the refresher thread
        raise RemoteError(f"{url!r}: not a usable file path ({exc})") from None
    for resolved_root in resolved:
        if path == resolved_root or resolved_root in path.parents:
            return path
    raise RemoteError(f"{url}: resolves to {path}, outside allowed_file_uri_roots {roots}")


def read_regular_file(path: Path, limit: int) -> bytes:
    """Up to `limit` + 1 bytes of a regular file; a FIFO, device or directory is refused without blocking
    (opened non-blocking, checked with fstat before the first read)."""
    import os
    import stat

    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RemoteError(f"{path}: not a regular file (a FIFO, device or directory is refused)")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(limit + 1)
    finally:
        os.close(fd)


def fetch_bytes(url: str, remote: Mapping[str, Any], *, deadline: float = 30.0, context: Any = None) -> bytes:
    """Read the manifest bytes, enforcing the scheme rules, `max_bytes` and (https) an overall deadline;
    a redirect from https to another scheme is refused."""
    limit = int(remote.get("max_bytes") or 5242880)
    if url.startswith("file://"):
        path = check_file_url(url, remote)
        try:
            data = read_regular_file(path, limit)
        except OSError as exc:
            raise RemoteError(f"{url}: cannot read: {exc.strerror or exc}") from None
    elif url.startswith("https://"):
        pin = remote.get("manifest_sha256")
        if not pin:
            raise RemoteError(f"{url}: https:// manifests need [remote] manifest_sha256 (the artifact's sha256)")
        from runtime.fetch import FetchError, get

        try:
            data, _ = get(url, deadline=deadline, timeout=10.0, limit=limit + 1, context=context)
        except FetchError as exc:
            raise RemoteError(f"{url}: fetch failed: {exc}") from None
    else:
        raise RemoteError(f"{url}: only file:// and https:// manifest URLs are supported")
    if len(data) > limit:
        raise RemoteError(f"{url}: larger than [remote] max_bytes ({limit})")
    pin = remote.get("manifest_sha256")
    if pin and hashlib.sha256(data).hexdigest() != pin:
        raise RemoteError(f"{url}: sha256 does not match [remote] manifest_sha256")
    return data


def load_remote_manifest(url: str, remote: Mapping[str, Any]) -> tuple[ManifestArtifact, bytes]:
    """Fetch and verify (format, canonical bytes, digest) a compiled manifest artifact."""
    from runtime.artifact import ArtifactError, decode_manifest
    from runtime.canonical import compute_digest, pretty_bytes

    data = fetch_bytes(url, remote)
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RemoteError(f"{url}: not a JSON manifest artifact ({exc})") from None
    if not isinstance(obj, dict) or obj.get("format") != MANIFEST_FORMAT:
        raise RemoteError(f"{url}: not a compiled manifest artifact (format {MANIFEST_FORMAT}); "
                          "pack YAML with oneiric manifest pack first")
    if obj.get("digest") != compute_digest(obj) or pretty_bytes(obj) != data:
        raise RemoteError(f"{url}: digest verification failed")
    try:
        return decode_manifest(obj, url), data
    except ArtifactError as exc:
        raise RemoteError(str(exc)) from None


class RemoteRefresher:
    """Daemon thread: every `refresh_interval`, fetch and apply a changed manifest; keeps the old one on failure."""

    def __init__(self, rt: Any, remote: Mapping[str, Any], *, on_error: Callable[[str], None] | None = None) -> None:
        self.rt = rt
        self.remote = dict(remote)
        self.url = str(remote.get("manifest_url") or "")
        self.interval = float(remote.get("refresh_interval", 300))  # checked against its constraints at start
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.status = "idle"
        self.last_error: str | None = None

    def refresh_once(self) -> bool:
        """True when a new manifest was applied."""
        try:
            manifest, data = load_remote_manifest(self.url, self.remote)
        except RemoteError as exc:
            self.status, self.last_error = "error", str(exc)
            self.rt.log("ERROR", "remote manifest refused; keeping the current one", error=str(exc))
            return False
        self.status, self.last_error = "ok", None
        if manifest.digest == self.rt.manifest.digest:
            return False
        cache = Path(self.rt.cache_dir) / "remote_manifest.json"
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(cache.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(cache)
        except OSError:
            pass  # the cache is a convenience; serving the verified manifest is what matters
        self.rt.swap_manifest(manifest)
        self.rt.log("INFO", "remote manifest applied", digest=manifest.digest, url=self.url)
        return True

    def _run(self) -> None:
        self.refresh_once()
        while not self._stop.wait(self.interval):
            self.refresh_once()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="oneiric-remote", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
