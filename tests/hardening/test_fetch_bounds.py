"""Bounded fetches against real local servers: Google's token keys (JwksCache) through an outage and a
trickling key server, and remote manifests (a FIFO in the allowed root, an https redirect to http, an https
server that trickles). No assertion on wall time: each case checks what was answered and how many
fetches were made; waits are bounded by the code under test and polled with deadlines here."""

from __future__ import annotations

import http.server
import json
import os
import ssl
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from runtime.remote import RemoteError, fetch_bytes
from runtime.tasks_auth import AuthUnavailableError, JwksCache

from tests.support.env import wait_until

pytestmark = pytest.mark.area("security")


class Server:
    """A loopback HTTP(S) server whose answer is chosen per test: `mode` is ok | fail | trickle | redirect."""

    def __init__(self, body: bytes, *, context: ssl.SSLContext | None = None) -> None:
        self.body, self.mode, self.hits, self.location = body, "ok", 0, ""
        self.stop = threading.Event()
        srv = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                srv.hits += 1
                if srv.mode == "fail":
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if srv.mode == "redirect":
                    self.send_response(302)
                    self.send_header("Location", srv.location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "public, max-age=60")
                self.send_header("Content-Length", str(len(srv.body)))
                self.end_headers()
                if srv.mode == "ok":
                    self.wfile.write(srv.body)
                    return
                for byte in srv.body:  # trickle: one byte every 0.3 s, until the client gives up
                    if srv.stop.wait(0.3):
                        return
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:
                        return

            def log_message(self, *a: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        if context is not None:
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        scheme = "https" if context is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}/x.json"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _jwks_body() -> tuple[bytes, tuple[int, int]]:
    n, e = (1 << 2047) + 12345, 65537
    b64 = lambda i, size: __import__("base64").urlsafe_b64encode(i.to_bytes(size, "big")).rstrip(b"=").decode()  # noqa
    return json.dumps({"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "k1",
                                 "n": b64(n, 256), "e": b64(e, 3)}]}).encode(), (n, e)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _at_once(fn, n: int = 6) -> list[Any]:
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        try:
            results[i] = fn()
        except Exception as exc:  # noqa: BLE001 - the answer under test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a caller was never answered"
    return results


def test_jwks_serves_cached_keys_through_an_outage_with_one_refetch(reliability):
    body, key = _jwks_body()
    server = Server(body)
    clock = Clock()
    try:
        cache = JwksCache(server.url, min_refetch=30, deadline=2, wait=1, timeout=1, clock=clock)
        assert cache.key("k1") == key and cache.fetches == 1
        server.mode = "fail"
        clock.now += 61  # past max-age=60: the cache is stale
        answers = _at_once(lambda: cache.key("k1"))
        assert answers == [key] * 6  # stale-while-error: every delivery still verifies
        wait_until(lambda: cache.fetches == 2, timeout=10)  # one refetch for all six
        assert server.hits == 2
        for _ in range(5):  # within min_refetch: no new attempt, the stale keys keep answering
            assert cache.key("k1") == key
        assert cache.fetches == 2 and server.hits == 2
        clock.now += 31
        server.mode = "ok"
        assert cache.key("k1") == key
        wait_until(lambda: cache.fetches == 3, timeout=10)
    finally:
        server.close()
    reliability.set(injects="JWKS server answering 500 after the cache expired; 6 deliveries at once",
                    must_hold="all answered from the stale keys; one refetch, then none until min_refetch",
                    figure=f"6 of 6 verified, {server.hits} fetches in all")


def test_jwks_trickling_server_is_cut_off_by_the_overall_deadline(reliability):
    body, _ = _jwks_body()
    server = Server(body)
    server.mode = "trickle"  # ~4 minutes to send the whole body
    try:
        cache = JwksCache(server.url, min_refetch=30, deadline=1.5, wait=0.5, timeout=1)
        answers = _at_once(lambda: cache.key("k1"))
        assert all(isinstance(a, AuthUnavailableError) for a in answers), answers  # 503, not a hang
        wait_until(lambda: cache.fetches == 1, timeout=10)  # the one fetch ended at its deadline
        assert server.hits == 1
        with pytest.raises(AuthUnavailableError, match="FetchError"):
            cache.key("k1")  # rate-limited: no second fetch, the reason is kept
        assert server.hits == 1
    finally:
        server.close()
    reliability.set(injects="a key server trickling one byte every 0.3 s, empty cache, 6 deliveries at once",
                    must_hold="each answered AuthUnavailableError (503) after the wait; one fetch, ended by "
                              "its overall deadline", figure="6 of 6 answered 503, 1 fetch")


def test_remote_refresh_refuses_a_fifo_without_blocking(tmp_path, reliability):
    root = tmp_path / "root"
    root.mkdir()
    fifo = root / "m.json"
    os.mkfifo(fifo)
    remote = {"allow_file_uris": True, "allowed_file_uri_roots": [str(root)], "max_bytes": 5242880}
    outcome: list[Any] = []
    worker = threading.Thread(target=lambda: outcome.append(_catch(lambda: fetch_bytes(fifo.as_uri(), remote))),
                              daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "the refresher blocked on a FIFO"
    assert isinstance(outcome[0], RemoteError) and "not a regular file" in str(outcome[0])
    reliability.set(injects="a FIFO named by the file:// manifest_url inside the allowed root",
                    must_hold="refused (not a regular file) without blocking", figure="refused")


def _catch(fn):
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001
        return exc


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting it) for a self-signed 127.0.0.1 certificate."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "c.pem", folder / "k.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


def test_remote_https_redirect_to_http_is_refused(tls, reliability):
    import hashlib

    body = b'{"format": "oneiric.manifest/1"}'
    plain = Server(body)
    secure = Server(body, context=tls[0])
    secure.mode, secure.location = "redirect", plain.url
    try:
        remote = {"manifest_sha256": hashlib.sha256(body).hexdigest(), "max_bytes": 5242880}
        with pytest.raises(RemoteError, match="redirect from https to http URL refused"):
            fetch_bytes(secure.url, remote, context=tls[1])
        assert plain.hits == 0  # never followed
        secure.mode = "ok"
        assert fetch_bytes(secure.url, remote, context=tls[1]) == body
    finally:
        plain.close()
        secure.close()
    reliability.set(injects="an https manifest_url answering 302 to a plain http URL",
                    must_hold="refused, the http URL never fetched", figure="refused, 0 plain fetches")


def test_remote_https_trickle_ends_at_the_deadline(tls, reliability):
    import hashlib

    body = b"x" * 1000
    secure = Server(body, context=tls[0])
    secure.mode = "trickle"
    try:
        remote = {"manifest_sha256": hashlib.sha256(body).hexdigest(), "max_bytes": 5242880}
        started = time.monotonic()
        with pytest.raises(RemoteError, match="not received within 1 s"):
            fetch_bytes(secure.url, remote, deadline=1, context=tls[1])
        elapsed = time.monotonic() - started
    finally:
        secure.close()
    reliability.set(injects="an https manifest server sending one byte every 0.3 s (5 minutes for the body)",
                    must_hold="the fetch ends with an error at its overall deadline",
                    figure=f"refused after {elapsed:.1f} s (deadline 1 s)")


def test_oidc_deliveries_keep_verifying_when_the_key_server_goes_away(tmp_path, orchestrators, reliability):
    """Through a running orchestrate: keys cached for 1 s, then the key server is gone; six deliveries at
    once after expiry are all verified from the stale keys (stale-while-error), none waits out a fetch."""
    from tests.support.oidc import AUDIENCE, SA, KeyServer, make_token

    from .project import MANIFEST, SETTINGS, make_project, post, start

    keys = KeyServer()
    key = keys.add_key("kid-1")
    keys.max_age = 1
    settings = SETTINGS.replace('queue = "local"', 'queue = "cloudtasks"\n\n'
                                '[adapters.provider_settings.cloudtasks]\nproject_id = "hardening"\n'
                                'location = "us-central1"\nqueue = "q"\nemulator_host = "127.0.0.1:9"\n'
                                f'http_target_url = "{AUDIENCE}"\nservice_account_email = "{SA}"')
    settings = settings.replace('tasks_auth = "hmac"\nhmac_key = "secret://tasks-hmac-key"',
                                f'tasks_auth = "oidc"\noidc_audience = "{AUDIENCE}"\n'
                                f'oidc_service_account = "{SA}"\noidc_certs_url = "{keys.url}"')
    root = make_project(tmp_path / "oidc", settings, MANIFEST)
    orch = orchestrators.append(start(root))

    def deliver(run_id: str) -> int:
        raw = json.dumps({"workflow": "noop3", "run_id": run_id}).encode()
        code, _ = post(orch.url, raw=raw, signed=False, headers={"Authorization": f"Bearer {make_token(key)}"})
        return code

    assert deliver("warm") == 200 and keys.fetches == 1
    keys.httpd.shutdown()
    keys.httpd.server_close()
    time.sleep(1.5)  # past max-age=1: the cached keys are stale and the key server refuses connections
    codes = _at_once(lambda: deliver(f"stale-{threading.get_ident()}"))
    assert codes == [200] * 6, codes
    assert orch.terminate() == 0
    reliability.set(injects="JWKS cached with max-age=1, then the key server shut down; 6 OIDC deliveries at once "
                            "against a running orchestrate", must_hold="all verified from the stale keys (200)",
                    figure=f"{codes.count(200)} of 6 answered 200")
