"""HMAC signatures and Google-style OIDC ID tokens, verified with the standard library only.

The RSA key is generated locally (cryptography), its JWKS served by a loopback
HTTP server; no Google address is ever contacted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from typing import Any, Iterator

import pytest

from runtime.tasks_auth import (AuthError, HmacVerifier, JwksCache, OidcVerifier, ReplayCache,
                                rsa_pkcs1v15_sha256_verify, sign)
from tests.support.oidc import AUDIENCE, BACKENDS, SA, KeyServer, LocalKey, b64url, make_token


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

@pytest.fixture(scope="module")
def keyserver() -> Iterator[KeyServer]:
    ks = KeyServer()
    ks.add_key("kid-1")
    yield ks
    ks.httpd.shutdown()
    ks.httpd.server_close()


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
    forged = h + "." + b64url(json.dumps(forged_claims).encode()) + "." + s
    with pytest.raises(AuthError, match="signature is invalid"):
        v.verify(b"{}", {"Authorization": f"Bearer {forged}"})
    stranger = LocalKey()
    with pytest.raises(AuthError, match="signature is invalid"):
        v.verify(b"{}", {"Authorization": "Bearer " + make_token(stranger)})
    with pytest.raises(AuthError, match="unknown key"):
        v.verify(b"{}", {"Authorization": "Bearer " + make_token(stranger, kid="nope")})
    none_alg = b64url(b'{"alg":"none","kid":"kid-1"}') + "." + c + "."
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
