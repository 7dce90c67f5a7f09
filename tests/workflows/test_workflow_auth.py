"""HMAC signatures and Google-style OIDC ID tokens, verified with the standard library only.

The RSA key is generated locally (cryptography), its JWKS served by a loopback
HTTP server; no Google address is ever contacted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import os
import threading
import time
from typing import Any, Iterator

import pytest

from runtime.tasks_auth import (AuthError, HmacVerifier, JwksCache, OidcVerifier, ReplayCache,
                                rsa_pkcs1v15_sha256_verify, sign)

import shutil
import subprocess
import tempfile

AUDIENCE = "https://oneiric.test/tasks/workflow"
SA = "tasks-invoker@oneiric-test.iam.gserviceaccount.com"


# ---------------------------------------------------------------- HMAC

def test_hmac_accepts_a_fresh_signature_and_refuses_replay_after_success():
    key = b"k" * 32
    body = b'{"workflow":"ingest"}'
    v = HmacVerifier(key, replay=ReplayCache())
    header = sign(key, body)
    p = v.verify(body, {"x-oneiric-signature": header})
    assert p.mode == "hmac"
    v.verify(body, {"X-Oneiric-Signature": header})  # not consumed yet: a failed delivery may be retried
    p.consume()
    with pytest.raises(AuthError, match="replay"):
        v.verify(body, {"X-Oneiric-Signature": header})


def test_hmac_signature_is_hmac_sha256_over_timestamp_dot_body():
    key, body, t = b"secret", b"{}", 1700000000
    expected = hmac.new(key, b"1700000000.{}", hashlib.sha256).hexdigest()
    assert sign(key, body, t) == f"t=1700000000,v1={expected}"


@pytest.mark.parametrize("headers, message", [
    ({}, "missing"),
    ({"X-Oneiric-Signature": "v1=abc"}, "malformed"),
    ({"X-Oneiric-Signature": "t=1,v1=" + "0" * 64}, "skew"),
])
def test_hmac_refuses_missing_malformed_and_stale(headers, message):
    with pytest.raises(AuthError, match=message):
        HmacVerifier(b"k").verify(b"{}", headers)


def test_hmac_refuses_tampered_body_wrong_key_and_old_timestamps():
    key = b"k" * 32
    v = HmacVerifier(key)
    good = sign(key, b'{"a":1}')
    with pytest.raises(AuthError, match="does not match"):
        v.verify(b'{"a":2}', {"X-Oneiric-Signature": good})
    with pytest.raises(AuthError, match="does not match"):
        v.verify(b'{"a":1}', {"X-Oneiric-Signature": sign(b"other", b'{"a":1}')})
    old = sign(key, b'{"a":1}', int(time.time()) - 301)
    with pytest.raises(AuthError, match="skew"):
        v.verify(b'{"a":1}', {"X-Oneiric-Signature": old})
    future = sign(key, b'{"a":1}', int(time.time()) + 301)
    with pytest.raises(AuthError, match="skew"):
        v.verify(b'{"a":1}', {"X-Oneiric-Signature": future})
    v.verify(b'{"a":1}', {"X-Oneiric-Signature": sign(key, b'{"a":1}', int(time.time()) - 290)})


# ---------------------------------------------------------------- RSA and OIDC

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _has_cryptography() -> bool:
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return False
    return True


BACKENDS = [b for b, ok in (("cryptography", _has_cryptography()), ("openssl", bool(shutil.which("openssl")))) if ok]


class LocalKey:
    """A locally generated 2048-bit RSA key: the `cryptography` package when installed, else the openssl CLI."""

    def __init__(self, backend: str | None = None) -> None:
        self.backend = backend or BACKENDS[0]
        if self.backend == "cryptography":
            from cryptography.hazmat.primitives.asymmetric import rsa

            self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            nums = self._key.public_key().public_numbers()
            self.n, self.e = nums.n, nums.e
        else:
            self._dir = tempfile.mkdtemp(prefix="oneiric-rsa-")
            self._pem = os.path.join(self._dir, "key.pem")
            subprocess.run(["openssl", "genrsa", "-out", self._pem, "2048"], check=True, capture_output=True)
            out = subprocess.run(["openssl", "rsa", "-in", self._pem, "-noout", "-text"], check=True,
                                 capture_output=True, text=True).stdout
            self.e = int(out.split("publicExponent:")[1].split()[0])
            modulus = out.split("modulus:")[1].split("publicExponent")[0]
            self.n = int("".join(modulus.split()).replace(":", ""), 16)

    def sign(self, data: bytes, digest: str = "sha256") -> bytes:
        """RSASSA-PKCS1-v1_5 over `data` with `digest`."""
        if self.backend == "cryptography":
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import padding

            return self._key.sign(data, padding.PKCS1v15(), {"sha256": hashes.SHA256(), "sha1": hashes.SHA1()}[digest])
        return subprocess.run(["openssl", "dgst", f"-{digest}", "-sign", self._pem], input=data, check=True,
                              capture_output=True).stdout


class KeyServer:
    """Serves a JWKS for locally generated keys on 127.0.0.1, counting fetches."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.fetches = 0
        self.max_age = 3600
        srv = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                srv.fetches += 1
                jwks = {"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
                                  "n": _b64(k.n.to_bytes(256, "big")), "e": _b64(k.e.to_bytes(3, "big"))}
                                 for kid, k in srv.keys.items()]}
                out = json.dumps(jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", f"public, max-age={srv.max_age}, must-revalidate")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/oauth2/v3/certs"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def add_key(self, kid: str) -> LocalKey:
        key = LocalKey()
        self.keys[kid] = key
        return key


@pytest.fixture(scope="module")
def keyserver() -> Iterator[KeyServer]:
    ks = KeyServer()
    ks.add_key("kid-1")
    yield ks
    ks.httpd.shutdown()
    ks.httpd.server_close()


def make_token(key: Any, kid: str = "kid-1", **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": "https://accounts.google.com", "aud": AUDIENCE, "email": SA, "email_verified": True,
              "sub": "1234567890", "azp": "1234567890", "iat": now - 10, "exp": now + 3590}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    header = {"alg": "RS256", "kid": kid, "typ": "JWT"}
    signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    return signing_input + "." + _b64(key.sign(signing_input.encode()))


def verifier(keyserver: KeyServer, **kw: Any) -> OidcVerifier:
    return OidcVerifier(audience=AUDIENCE, service_account=SA, jwks=JwksCache(keyserver.url), **kw)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rsa_verify_matches_a_real_signer_for_random_messages(backend):
    key = LocalKey(backend)
    for _ in range(3):
        msg = os.urandom(100)
        sig = key.sign(msg)
        assert rsa_pkcs1v15_sha256_verify(key.n, key.e, msg, sig)
        assert not rsa_pkcs1v15_sha256_verify(key.n, key.e, msg + b"x", sig)
        bad = bytearray(sig)
        bad[-1] ^= 1
        assert not rsa_pkcs1v15_sha256_verify(key.n, key.e, msg, bytes(bad))
    # PKCS#1 v1.5 with another hash (SHA-1) must not pass as SHA-256
    assert not rsa_pkcs1v15_sha256_verify(key.n, key.e, b"m", key.sign(b"m", "sha1"))
    assert not rsa_pkcs1v15_sha256_verify(key.n, key.e, b"m", b"\x00" * 256)


def test_a_key_generator_is_available():
    assert BACKENDS, "need the cryptography package or the openssl CLI to make test keys"


def test_oidc_accepts_a_valid_token_and_caches_keys(keyserver):
    v = verifier(keyserver)
    before = keyserver.fetches
    for _ in range(3):
        p = v.verify(b"{}", {"Authorization": "Bearer " + make_token(keyserver.keys["kid-1"])})
        assert (p.mode, p.subject) == ("oidc", SA)
    assert keyserver.fetches - before == 1


@pytest.mark.parametrize("overrides, message", [
    ({"aud": "https://elsewhere.test/"}, "audience"),
    ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "expired"),
    ({"iss": "https://evil.example"}, "issuer"),
    ({"email": "someone@else.iam.gserviceaccount.com"}, "service account"),
    ({"email_verified": False}, "not verified"),
    ({"iat": int(time.time()) + 3600, "exp": int(time.time()) + 7200}, "future"),
    ({"exp": None}, "lacks exp"),
])
def test_oidc_refuses_wrong_claims(keyserver, overrides, message):
    token = make_token(keyserver.keys["kid-1"], **overrides)
    with pytest.raises(AuthError, match=message):
        verifier(keyserver).verify(b"{}", {"Authorization": f"Bearer {token}"})


def test_oidc_refuses_bad_signatures_foreign_keys_and_malformed_tokens(keyserver):
    v = verifier(keyserver)
    token = make_token(keyserver.keys["kid-1"])
    h, c, s = token.split(".")
    forged_claims = json.loads(base64.urlsafe_b64decode(c + "=="))
    forged_claims["email"] = SA
    forged_claims["aud"] = AUDIENCE
    forged_claims["sub"] = "attacker"
    forged = h + "." + _b64(json.dumps(forged_claims).encode()) + "." + s
    with pytest.raises(AuthError, match="signature is invalid"):
        v.verify(b"{}", {"Authorization": f"Bearer {forged}"})
    stranger = LocalKey()
    with pytest.raises(AuthError, match="signature is invalid"):
        v.verify(b"{}", {"Authorization": "Bearer " + make_token(stranger)})
    with pytest.raises(AuthError, match="unknown key"):
        v.verify(b"{}", {"Authorization": "Bearer " + make_token(stranger, kid="nope")})
    none_alg = _b64(b'{"alg":"none","kid":"kid-1"}') + "." + c + "."
    with pytest.raises(AuthError, match="RS256"):
        v.verify(b"{}", {"Authorization": f"Bearer {none_alg}"})
    for bad in ("", "Basic abc", "Bearer a.b", "Bearer !!.??.**"):
        with pytest.raises(AuthError):
            v.verify(b"{}", {"Authorization": bad})


def test_oidc_refetches_keys_for_a_new_kid_after_rotation(keyserver):
    v = OidcVerifier(audience=AUDIENCE, service_account=SA, jwks=JwksCache(keyserver.url, min_refetch=0))
    v.verify(b"{}", {"Authorization": "Bearer " + make_token(keyserver.keys["kid-1"])})
    new_key = keyserver.add_key("kid-2")
    p = v.verify(b"{}", {"Authorization": "Bearer " + make_token(new_key, kid="kid-2")})
    assert p.subject == SA


def test_oidc_without_audience_configured_refuses_everything(keyserver):
    v = OidcVerifier(audience=None, service_account=SA, jwks=JwksCache(keyserver.url))
    with pytest.raises(AuthError, match="oidc_audience"):
        v.verify(b"{}", {"Authorization": "Bearer " + make_token(keyserver.keys["kid-1"])})
