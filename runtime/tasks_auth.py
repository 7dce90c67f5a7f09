"""Authentication of task deliveries (`POST /tasks/workflow`): HMAC signatures and Google OIDC ID tokens.

Standard library only. Two verifiers share one contract: `verify(body, headers)`
returns a `Principal` or raises `AuthError` (a 401 for the caller).

- HMAC: `X-Oneiric-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, t + "." + body)>`.
  The timestamp must be within `skew` seconds of now (the workflow endpoint sets it
  from `[http] hmac_window_seconds`: Cloud Tasks resends the headers signed at
  enqueue on every retry); the digest is compared in constant time. With a
  `replay` cache, a (t, v1) pair that already got a 2xx answer is refused (the
  caller reports success through `Principal.consume()`); without one the caller
  makes replays harmless itself (the endpoint keys runs by what the signature covers).
- OIDC: `Authorization: Bearer <Google-signed RS256 ID token>`: issuer
  `accounts.google.com`, the configured audience, the configured service
  account email with `email_verified`, `exp`/`iat` with a small leeway. Keys
  come from Google's JWKS URL (runtime.fetch: an overall deadline), cached by
  `Cache-Control: max-age`, served stale while a refetch fails, refetched one at
  a time and at most every `min_refetch` seconds (JwksCache). RSA PKCS#1 v1.5
  verification is `pow(sig, e, n)` compared with the padded DigestInfo.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

SIGNATURE_HEADER = "X-Oneiric-Signature"
DEFAULT_SKEW_SECONDS = 300
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v3/certs"
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
OIDC_LEEWAY_SECONDS = 60

#: DER prefix of a PKCS#1 v1.5 DigestInfo for SHA-256 (RFC 8017, section 9.2, note 1).
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")
_SIG_RE = re.compile(r"^\s*t=(\d{1,12})\s*,\s*v1=([0-9a-fA-F]{64})\s*$")


class AuthError(Exception):
    """A delivery is not authenticated; the message is safe to return to the caller."""


class AuthUnavailableError(AuthError):
    """The means to check a delivery (the HMAC key, Google's signing keys) cannot be read right now:
    not the sender's fault, so a 503 to retry later rather than a 401."""


@dataclass
class Principal:
    """Who sent a delivery, and how to mark its credential as used once the delivery succeeded."""

    mode: str  # "hmac" | "oidc" | "none"
    subject: str = ""
    _consume: Callable[[], None] | None = field(default=None, repr=False)
    #: the (token, t) pair `consume()` records, for a caller that records it in its own transaction
    token: tuple[str, float] | None = None

    def consume(self) -> None:
        if self._consume is not None:
            self._consume()


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in headers.items()}


# ---------------------------------------------------------------------------
# HMAC
# ---------------------------------------------------------------------------


def sign(key: bytes, body: bytes, timestamp: int | None = None) -> str:
    """The `X-Oneiric-Signature` value for `body` at `timestamp` (now when None)."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    digest = hmac.new(key, str(t).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


class ReplayCache:
    """(t, signature) pairs already answered with success, kept for the skew window.

    In memory. The workflow endpoint does not use one: its deliveries are idempotent by run, so a
    replayed signature reaches the same run (see runtime.workflows.endpoint).
    """

    def __init__(self, window: float = 2 * DEFAULT_SKEW_SECONDS) -> None:
        self._window = window
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def seen(self, token: str) -> bool:
        with self._lock:
            return token in self._seen

    def add(self, token: str, t: float) -> bool:
        """Record a pair; False when it was already recorded."""
        now = time.time()
        with self._lock:
            if len(self._seen) > 10000:
                self._seen = {k: v for k, v in self._seen.items() if v > now - self._window}
            if token in self._seen:
                return False
            self._seen[token] = t
            return True


class HmacVerifier:
    """Checks `X-Oneiric-Signature` over the raw body."""

    mode = "hmac"

    def __init__(self, key: bytes, *, skew: float = DEFAULT_SKEW_SECONDS, replay: Any = None,
                 clock: Callable[[], float] = time.time, queued_max_age: float | None = None) -> None:
        if not key:
            raise ValueError("HMAC key is empty")
        self._key = key
        self._skew = skew
        #: None: no replay check here (the caller makes a replay harmless, e.g. by idempotency keys)
        self._replay = replay
        self._clock = clock
        #: how old a queue delivery's signature may be (Cloud Tasks resends the headers signed at enqueue)
        self._queued_max_age = queued_max_age

    def verify(self, body: bytes, headers: Mapping[str, str]) -> Principal:
        value = _lower(headers).get(SIGNATURE_HEADER.lower())
        if not value:
            raise AuthError(f"missing {SIGNATURE_HEADER} header")
        m = _SIG_RE.match(value)
        if not m:
            raise AuthError(f"malformed {SIGNATURE_HEADER} header; expected t=<unix>,v1=<hex sha256>")
        t, given = int(m.group(1)), m.group(2).lower()
        age = self._clock() - t
        oldest = self._skew
        if self._queued_max_age is not None and _lower(headers).get("x-cloudtasks-taskname"):
            oldest = max(oldest, self._queued_max_age)
        if age > oldest or -age > self._skew:
            raise AuthError("signature timestamp outside the allowed clock skew")
        expected = hmac.new(self._key, str(t).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, given):
            raise AuthError("signature does not match the body")
        token = f"{t}:{given}"
        if self._replay is None:
            return Principal("hmac", "hmac", None, (token, float(t)))
        if self._replay.seen(token):
            raise AuthError("signature already used (replay)")
        return Principal("hmac", "hmac", lambda: self._replay.add(token, t), (token, float(t)))


# ---------------------------------------------------------------------------
# OIDC (Google-signed RS256 ID tokens)
# ---------------------------------------------------------------------------


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def rsa_pkcs1v15_sha256_verify(n: int, e: int, message: bytes, signature: bytes) -> bool:
    """RSASSA-PKCS1-v1_5 verification with SHA-256 (RFC 8017, 8.2.2)."""
    k = (n.bit_length() + 7) // 8
    if len(signature) != k or k < 128:
        return False
    s = int.from_bytes(signature, "big")
    if s >= n:
        return False
    em = pow(s, e, n).to_bytes(k, "big")
    t = _SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
    if k < len(t) + 11:
        return False
    expected = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    return hmac.compare_digest(em, expected)


class JwksCache:
    """Google's signing keys by `kid`, fetched over HTTPS and cached per `Cache-Control: max-age`.

    - Stale-while-error: once keys were fetched, an expired cache keeps serving them while a refetch
      runs or fails; only a cache that never got keys answers AuthUnavailableError (a 503).
    - One fetch at a time, at most one every `min_refetch` seconds (an unknown `kid` or an expired
      cache asks for one); it runs on its own thread, and a delivery waits for it at most `wait`
      seconds, and only when the keys it needs are not cached.
    - Each fetch has an overall `deadline` (runtime.fetch), not only a per-read timeout.
    """

    def __init__(self, url: str = GOOGLE_CERTS_URL, *, timeout: float = 5.0, min_refetch: float = 30.0,
                 default_ttl: float = 3600.0, deadline: float = 10.0, wait: float = 5.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.url = url
        self._timeout = timeout
        self._deadline = deadline
        self._wait = wait
        self._min_refetch = min_refetch
        self._default_ttl = default_ttl
        self._clock = clock
        self._keys: dict[str, tuple[int, int]] = {}
        self._expires = 0.0
        self._last_attempt: float | None = None
        self._last_error: str | None = None
        self._inflight: threading.Event | None = None
        self._lock = threading.Lock()
        #: number of fetches made, successful or not (observability and tests)
        self.fetches = 0

    def _fetch(self) -> None:
        from runtime.fetch import get

        raw, headers = get(self.url, deadline=self._deadline, timeout=self._timeout, limit=1 << 20,
                           headers={"Accept": "application/json"})
        data = json.loads(raw)
        keys: dict[str, tuple[int, int]] = {}
        for jwk in data.get("keys", []):
            if jwk.get("kty") != "RSA" or "kid" not in jwk:
                continue
            if jwk.get("alg") not in (None, "RS256") or jwk.get("use") not in (None, "sig"):
                continue
            keys[jwk["kid"]] = (int.from_bytes(b64url_decode(jwk["n"]), "big"),
                                int.from_bytes(b64url_decode(jwk["e"]), "big"))
        m = re.search(r"max-age=(\d{1,9})", headers.get("Cache-Control", "") or "")
        ttl = float(m.group(1)) if m else self._default_ttl
        with self._lock:
            self._keys = keys
            self._expires = self._clock() + ttl

    def _run_fetch(self, done: threading.Event) -> None:
        try:
            self._fetch()
            error = None
        except Exception as exc:  # network, deadline, JSON or key decoding: keep serving the old keys
            error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self.fetches += 1
            self._last_error = error
            self._inflight = None
        done.set()

    def key(self, kid: str) -> tuple[int, int] | None:
        with self._lock:
            now = self._clock()
            known = kid in self._keys
            if known and now < self._expires:
                return self._keys[kid]
            done = self._inflight
            due = self._last_attempt is None or now - self._last_attempt >= self._min_refetch
            if done is None and due:
                self._last_attempt = now
                done = self._inflight = threading.Event()
                threading.Thread(target=self._run_fetch, args=(done,), name="oneiric-jwks", daemon=True).start()
            if known:  # expired: served while the refetch runs (or failed)
                return self._keys[kid]
        if done is not None:
            done.wait(self._wait)
        with self._lock:
            if not self._keys:
                reason = self._last_error or "the key server did not answer in time"
                raise AuthUnavailableError(f"cannot fetch token signing keys: {reason.split(':')[0]}")
            return self._keys.get(kid)


class OidcVerifier:
    """Checks `Authorization: Bearer <Google ID token>` for one audience and one service account."""

    mode = "oidc"

    def __init__(self, *, audience: str | None, service_account: str | None, jwks: JwksCache | None = None,
                 issuers: tuple[str, ...] = GOOGLE_ISSUERS, leeway: float = OIDC_LEEWAY_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self._audience = audience
        self._service_account = service_account
        self._jwks = jwks or JwksCache()
        self._issuers = issuers
        self._leeway = leeway
        self._clock = clock

    def verify(self, body: bytes, headers: Mapping[str, str]) -> Principal:
        if not self._audience or not self._service_account:
            raise AuthError("oidc auth needs http.oidc_audience and http.oidc_service_account configured")
        auth = _lower(headers).get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("missing bearer token")
        claims = self.verify_token(token.strip())
        return Principal("oidc", str(claims.get("email", "")))

    def verify_token(self, token: str) -> dict[str, Any]:
        parts = token.split(".")
        if len(parts) != 3:
            raise AuthError("token is not a JWS compact serialisation")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            signature = b64url_decode(parts[2])
        except (ValueError, TypeError):
            raise AuthError("token is not valid base64url JSON") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise AuthError("token header or claims are not objects")
        if header.get("alg") != "RS256":
            raise AuthError("token algorithm must be RS256")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise AuthError("token has no key id")
        key = self._jwks.key(kid)
        if key is None:
            raise AuthError("token signed by an unknown key")
        n, e = key
        if not rsa_pkcs1v15_sha256_verify(n, e, (parts[0] + "." + parts[1]).encode("ascii"), signature):
            raise AuthError("token signature is invalid")
        now = self._clock()
        if claims.get("iss") not in self._issuers:
            raise AuthError("token issuer is not Google")
        aud = claims.get("aud")
        if aud != self._audience and not (isinstance(aud, list) and self._audience in aud):
            raise AuthError("token audience does not match http.oidc_audience")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, (int, float)) or not isinstance(iat, (int, float)):
            raise AuthError("token lacks exp or iat")
        if now > exp + self._leeway:
            raise AuthError("token expired")
        if iat > now + self._leeway:
            raise AuthError("token issued in the future")
        if claims.get("email") != self._service_account:
            raise AuthError("token email is not the configured service account")
        if claims.get("email_verified") is not True:
            raise AuthError("token email is not verified")
        return claims


class NoAuth:
    mode = "none"

    def verify(self, body: bytes, headers: Mapping[str, str]) -> Principal:
        return Principal("none")
