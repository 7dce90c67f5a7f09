"""A real PostgreSQL server for tests and bench/: the distribution's `initdb`/`pg_ctl` in a temp dir on a free port.

As root (CI, these machines) the server runs as the `postgres` user through `runuser`, with a data dir
that user owns; otherwise as the current user. `PgServer.database()` makes a fresh database and
returns its DSN. `.ci/run` installs the `postgresql` package when `initdb` is missing.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path


def find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """One server per test session (start/stop), a fresh database per test (`database()`)."""

    def __init__(self) -> None:
        self.initdb, self.pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="oneiric-pg-"))
        self.data = self.dir / "data"
        self._user: str | None = None
        if os.geteuid() == 0:
            self._user = "postgres"
            pw = pwd.getpwnam(self._user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.admin_dsn = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    @property
    def available(self) -> bool:
        return bool(self.initdb and self.pg_ctl)

    def _run(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
        if self._user:
            argv = ["runuser", "-u", self._user, "--"] + argv
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=self.dir)

    def start(self) -> "PgServer":
        out = self._run([self.initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                         "--no-sync", "--no-instructions"])
        if out.returncode != 0:
            raise RuntimeError(f"initdb failed: {out.stdout}{out.stderr}")
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        out = self._run([self.pg_ctl, "-D", str(self.data), "-o", opts, "-l", str(self.dir / "server.log"),
                         "-w", "-t", "60", "start"], timeout=90)
        if out.returncode != 0:
            log = (self.dir / "server.log").read_text() if (self.dir / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {out.stdout}{out.stderr}{log}")
        return self

    def stop(self) -> None:
        if self.data.exists():
            self._run([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"], timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)

    def admin(self, sql: str) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.admin_dsn, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(sql)
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def database(self) -> str:
        """A new, empty database; its DSN."""
        name = "t_" + uuid.uuid4().hex[:16]
        self.admin(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def restart(self) -> None:
        """Stop (fast) and start again on the same port and data dir: every connection is cut."""
        self._run([self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"], timeout=60)
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._run([self.pg_ctl, "-D", str(self.data), "-o", opts, "-l", str(self.dir / "server.log"), "-w",
                   "start"], timeout=90)
