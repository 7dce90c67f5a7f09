"""Bounded HTTP(S) GETs for the runtime (Google's token-signing keys, remote manifests): an overall
deadline, a size limit, and no redirect from https to anything else.

A per-read socket timeout alone lets a server trickling one byte every few seconds hold the caller
for as long as it likes; here each read also checks the overall deadline, so a fetch ends within
`deadline` plus one read's `timeout`. Standard library only, imported when a fetch is first needed.
"""

from __future__ import annotations

import time
from typing import Any, Mapping


class FetchError(Exception):
    """The fetch failed, was too slow or too large, or was redirected off https; the message says which."""


def _stay_on_https() -> Any:
    import urllib.request

    class StayOnHttps(urllib.request.HTTPRedirectHandler):
        max_redirections = 5

        def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
            if req.full_url.startswith("https://") and not newurl.startswith("https://"):
                raise FetchError(f"redirect from https to {newurl.partition(':')[0] or 'a non-https'} URL refused")
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    return StayOnHttps()


def get(url: str, *, deadline: float, limit: int, timeout: float | None = None,
        headers: Mapping[str, str] | None = None, context: Any = None) -> tuple[bytes, Mapping[str, str]]:
    """(body, response headers) of GET `url`; FetchError past `deadline` seconds or `limit` bytes.

    `context` is an ssl.SSLContext for https (None: the system's trust store).
    """
    import http.client
    import urllib.error
    import urllib.request

    end = time.monotonic() + deadline
    handlers: list[Any] = [_stay_on_https()]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        resp = opener.open(request, timeout=min(timeout or deadline, deadline))
    except urllib.error.HTTPError as exc:
        exc.close()
        raise FetchError(f"HTTP {exc.code}") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise FetchError(f"{type(exc).__name__}: {reason}") from None
    parts: list[bytes] = []
    got = 0
    try:
        with resp:
            while True:
                if time.monotonic() >= end:
                    raise FetchError(f"not received within {deadline:g} s")
                try:
                    chunk = resp.read1(65536)
                except (OSError, http.client.HTTPException) as exc:
                    raise FetchError(f"{type(exc).__name__} while reading") from None
                if not chunk:
                    break
                got += len(chunk)
                if got > limit:
                    raise FetchError(f"larger than {limit} bytes")
                parts.append(chunk)
            return b"".join(parts), resp.headers
    except OSError as exc:  # closing a broken connection
        raise FetchError(f"{type(exc).__name__} while reading") from None
