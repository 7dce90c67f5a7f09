"""A threaded standard-library WSGI server: socketserver + wsgiref.handlers, one request per connection.

Why not `wsgiref.simple_server`: its `HTTPServer.server_bind` calls `socket.getfqdn`, which may wait on
DNS when binding 0.0.0.0 as Cloud Run does, and `http.server` pulls in the email package (~40 ms of
imports) before the first byte is served. This server binds with `TCPServer.server_bind` (no name
lookup), parses the request line and headers itself under one deadline (`header_timeout`, so a slow
client cannot hold a worker thread; the body gets the same deadline again), and leaves response framing
to `wsgiref.handlers`.
"""

from __future__ import annotations

import socketserver
import sys
import threading
import time
from typing import Any, Callable
from wsgiref.handlers import SimpleHandler

MAX_LINE = 65536
MAX_HEADERS = 100


class _BadRequest(Exception):
    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


class _ResponseHandler(SimpleHandler):
    server_software = "oneiric"
    http_version = "1.0"  # one request per connection: the response ends when the socket closes

    def log_exception(self, exc_info: Any) -> None:
        """Exceptions reach the app's own error handler; a failure here is a broken client connection."""


class _LogStream:
    """`wsgi.errors` for one request: what the app writes there becomes one log record, not stderr
    (stderr is for fatal errors only)."""

    def __init__(self, log: Callable[..., None]) -> None:
        self._log = log
        self._parts: list[str] = []

    def write(self, text: str) -> int:
        self._parts.append(text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        text = "".join(self._parts).strip()
        self._parts.clear()
        if text:
            self._log("ERROR", "request error output", output=text)


class _BodyReader:
    """`wsgi.input`: the request body must arrive within `timeout` seconds of the head, in total.

    A per-read socket timeout alone would let a client sending one byte a second hold a worker
    for as many seconds as the body has bytes (slow POST); reads past the deadline raise TimeoutError.
    """

    def __init__(self, raw: Any, sock: socket.socket, timeout: float) -> None:
        self._raw, self._sock, self._timeout = raw, sock, timeout
        self._deadline = time.monotonic() + timeout

    def _call(self, method: str, *args: Any) -> Any:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("request body not received in time")
        self._sock.settimeout(remaining)
        try:
            return getattr(self._raw, method)(*args)
        finally:
            self._sock.settimeout(self._timeout)  # writing the response gets the usual timeout

    def read(self, size: int = -1) -> bytes:
        """Chunk by chunk, so the deadline is checked between the chunks of one large read."""
        parts: list[bytes] = []
        got = 0
        while size < 0 or got < size:
            chunk = self._call("read1", 65536 if size < 0 else min(size - got, 65536))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def readline(self, size: int = -1) -> bytes:
        return self._call("readline", size)

    def readlines(self, hint: int = -1) -> list[bytes]:
        return self._call("readlines", hint)

    def __iter__(self) -> Any:
        return iter(self.readline, b"")


class _Handler(socketserver.StreamRequestHandler):
    server: "Server"

    def setup(self) -> None:
        self.timeout = self.server.header_timeout
        super().setup()

    def _readline(self, deadline: float) -> bytes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("request headers not received in time")
        self.connection.settimeout(remaining)
        budget = min(MAX_LINE, self._head_budget)
        line = self.rfile.readline(budget + 1)
        self._head_budget -= len(line)
        if len(line) > budget:  # one line too long, or the head as a whole over max_header_bytes
            raise _BadRequest("431 Request Header Fields Too Large")
        return line

    def _read_head(self) -> dict[str, Any] | None:
        deadline = time.monotonic() + self.server.header_timeout
        #: bytes the request line and headers may still take (http.max_header_bytes, in total)
        self._head_budget = self.server.max_header_bytes
        line = self._readline(deadline)
        while line in (b"\r\n", b"\n"):  # RFC 9112 2.2: ignore empty lines before the request line
            line = self._readline(deadline)
        if not line:
            return None
        parts = line.decode("latin-1").rstrip("\r\n").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise _BadRequest("400 Bad Request")
        method, target, version = parts
        environ = dict(self.server.base_environ)
        path, _, query = target.partition("?")
        if "%" in path:
            from urllib.parse import unquote

            path = unquote(path, "latin-1")
        environ.update(REQUEST_METHOD=method, PATH_INFO=path, QUERY_STRING=query, SERVER_PROTOCOL=version,
                       REMOTE_ADDR=self.client_address[0], REMOTE_PORT=str(self.client_address[1]))
        for _ in range(MAX_HEADERS + 1):
            line = self._readline(deadline)
            if line in (b"\r\n", b"\n", b""):
                return environ
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep or not name or name != name.strip():
                raise _BadRequest("400 Bad Request")
            key = name.upper().replace("-", "_")
            value = value.strip()
            if key == "TRANSFER_ENCODING":
                raise _BadRequest("501 Not Implemented")  # chunked request bodies are not supported
            if key == "CONTENT_LENGTH" and (not (value.isascii() and value.isdigit())
                                            or environ.get(key) not in ("", None, value)):
                raise _BadRequest("400 Bad Request")  # not a number, or two that differ (RFC 9112 6.3)
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                environ[key] = value
            else:
                key = "HTTP_" + key
                environ[key] = f"{environ[key]},{value}" if key in environ else value
        raise _BadRequest("431 Request Header Fields Too Large")

    def handle(self) -> None:
        try:
            environ = self._read_head()
        except _BadRequest as exc:
            self._plain(exc.status)
            return
        except (OSError, ValueError):  # timeout, reset, undecodable
            return
        if environ is None:
            return
        self.connection.settimeout(self.server.header_timeout)
        errors = _LogStream(self.server.log) if self.server.log is not None else sys.stderr
        body = _BodyReader(self.rfile, self.connection, self.server.header_timeout)
        handler = _ResponseHandler(body, self.wfile, errors, environ, multithread=True, multiprocess=False)
        try:
            handler.run(self.server.app)
        except OSError:
            pass

    def _plain(self, status: str) -> None:
        body = status.encode()
        try:
            self.wfile.write(b"HTTP/1.0 " + body + b"\r\nContent-Type: text/plain\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        except OSError:
            pass


class Server(socketserver.ThreadingTCPServer):
    """Threaded WSGI server; `start()` serves from a daemon thread, `shutdown()` stops accepting."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: Callable, *, header_timeout: float = 10.0,
                 log: Callable[..., None] | None = None, max_header_bytes: int = 65536,
                 max_connections: int = 256) -> None:
        self.app = app
        #: receives each request's `wsgi.errors` output as a log record (None: stderr)
        self.log = log
        self.header_timeout = float(header_timeout)
        #: request line + headers of one request, in bytes; past it: 431
        self.max_header_bytes = int(max_header_bytes)
        #: connections served at once (one thread each); past it a connection gets 503 + Retry-After
        self.max_connections = int(max_connections)
        if not (0 < self.header_timeout <= 3600 and 1024 <= self.max_header_bytes
                and 1 <= self.max_connections):
            raise ValueError("header_timeout, max_header_bytes or max_connections out of range")
        self._open = 0
        self._open_lock = threading.Lock()
        #: connections refused at the cap (observability and tests)
        self.refused = 0
        super().__init__(address, _Handler)  # TCPServer.server_bind: bind + no name lookup
        host, port = self.server_address[:2]
        self.base_environ = {
            "SERVER_NAME": host, "SERVER_PORT": str(port), "GATEWAY_INTERFACE": "CGI/1.1", "SCRIPT_NAME": "",
            "CONTENT_LENGTH": "", "wsgi.url_scheme": "http",
        }

    def process_request(self, request: Any, client_address: Any) -> None:
        """One thread per connection up to `max_connections`; past the cap the connection is answered
        503 with Retry-After from the accepting thread (a bounded write) and closed, no thread made."""
        with self._open_lock:
            full = self._open >= self.max_connections
            if not full:
                self._open += 1
        if full:
            self.refused += 1
            body = b'{"error": "overloaded", "detail": "too many open connections; retry later"}'
            try:
                request.settimeout(0.5)
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Retry-After: 1\r\nContent-Length: " + str(len(body)).encode()
                                + b"\r\nConnection: close\r\n\r\n" + body)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        with self._open_lock:
            self._open -= 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that vanished mid-request is not worth a traceback."""

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1},
                                  name="oneiric-http", daemon=True)
        thread.start()
        return thread
