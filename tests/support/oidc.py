"""OIDC the way Google does it, locally: an RSA key made here, its JWKS served on 127.0.0.1, ID tokens signed
with it. No Google address is ever contacted."""

from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Any

AUDIENCE = "https://oneiric.test/tasks/workflow"
SA = "tasks-invoker@oneiric-test.iam.gserviceaccount.com"


def b64url(data: bytes) -> str:
    """base64url without padding, as JWS wants it."""
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
                                  "n": b64url(k.n.to_bytes(256, "big")), "e": b64url(k.e.to_bytes(3, "big"))}
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


def make_token(key: Any, kid: str = "kid-1", **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": "https://accounts.google.com", "aud": AUDIENCE, "email": SA, "email_verified": True,
              "sub": "1234567890", "azp": "1234567890", "iat": now - 10, "exp": now + 3590}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    header = {"alg": "RS256", "kid": kid, "typ": "JWT"}
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    return signing_input + "." + b64url(key.sign(signing_input.encode()))
