"""A threaded standard-library WSGI server that binds without DNS and bounds how long headers may take."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from typing import Any, Callable
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer


class _DeadlineReader:
    """Wraps the request's rfile while headers are read: every readline shares one deadline."""

    def __init__(self, raw: Any, sock: socket.socket, deadline: float) -> None:
        self._raw, self._sock, self._deadline = raw, sock, deadline

    def readline(self, limit: int = -1) -> bytes:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("request headers not received in time")
        self._sock.settimeout(remaining)
        return self._raw.readline(limit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


class _Handler(WSGIRequestHandler):
    """One request per connection; headers must arrive within `server.header_timeout` in total,
    then each body read may wait that long."""

    def setup(self) -> None:
        self.timeout = self.server.header_timeout
        super().setup()

    def handle(self) -> None:
        raw = self.rfile
        self.rfile = _DeadlineReader(raw, self.connection, time.monotonic() + self.server.header_timeout)
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if len(self.raw_requestline) > 65536:
                self.requestline = self.request_version = self.command = ""
                self.send_error(414)
                return
            if not self.parse_request():
                return
        except (TimeoutError, socket.timeout, ConnectionError):
            self.close_connection = True
            return
        finally:
            self.rfile = raw
        self.connection.settimeout(self.server.header_timeout)
        handler = ServerHandler(self.rfile, self.wfile, self.get_stderr(), self.get_environ(),
                                multithread=True)
        handler.request_handler = self
        handler.server_software = "oneiric"
        try:
            handler.run(self.server.get_app())
        except (TimeoutError, socket.timeout, ConnectionError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Requests are logged as JSON by the app; the stdlib's stderr lines are dropped."""


class Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: Callable, *, header_timeout: float = 10.0) -> None:
        self.header_timeout = float(header_timeout)
        super().__init__(address, _Handler)
        self.set_app(app)

    def server_bind(self) -> None:
        """Bind without `HTTPServer.server_bind`, whose `socket.getfqdn` may wait on DNS for 0.0.0.0."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host
        self.server_port = port
        self.setup_environ()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that vanished mid-request is not a server error worth a traceback."""

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1},
                                  name="oneiric-http", daemon=True)
        thread.start()
        return thread
