"""Cold start: spawn -> first 200 on /healthz, and peak RSS, for Oneiric's orchestrate and baselines.

Servers (each started by its venv interpreter, 20 interleaved runs, median and min):
  oneiric     `python -m oneiric.cli orchestrate --profile serverless --no-remote` on the reference
              manifests compiled with embedded defaults (env secrets, local queue, memory vector)
  bottle      a bare bottle hello world (`bottle.run`, wsgiref)
  stdlib      http.server.ThreadingHTTPServer
  functions-framework  hello world in its own venv under the cache dir (skipped when not installable)
  oneiric gcp/file     the same with 10 secret references resolved at cold start through
              gcp.secret_manager (the official client against the suite's gRPC fake) or the
              mounted-file provider
  oneiric mounted      the gcp project with a [deploy] table: Secret Manager secrets delivered as Cloud Run
              mounts (the env of the service `oneiric compile` renders; delivery = mounted, no SDK)

Peak RSS is VmHWM from /proc/PID/status of the server process, read after its first 200 and one
request to a routed path (so lazily loaded frameworks count).
Prints a table and the ratios; targets: ours to the first 200 <= 1.15x the stdlib server (median of
per-round ratios), peak RSS <= 1.1x bare bottle's. Rows are the ROWS list: one builder function each.

    .venv/bin/python bench/coldstart.py [--runs 20] [--cache-dir DIR] [--no-ff]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
VENV_PY = ROOT / ".venv" / "bin" / "python"

sys.path.insert(0, str(ROOT))

from tests.support.cli import compile_project  # noqa: E402
from tests.support.env import free_port  # noqa: E402
from tests.support.projects import (EMBEDDED_SERVERLESS, copy_reference, make_embedded_project,  # noqa: E402
                                    write_project)

BOTTLE_APP = """\
import os
import bottle

app = bottle.Bottle()


@app.get("/healthz")
def healthz():
    return {"status": "ok"}


bottle.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), quiet=True)
"""

STDLIB_APP = """\
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"""

FF_APP = """\
def hello(request):
    return {"status": "ok"}
"""


#: time to listening of each run_once call, in call order
LISTENING: list[float | None] = []


def get_status(port: int, path: str = "/healthz") -> int | None:
    """Status of GET `path`, or None when nothing listens yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
            data = b""
            while b"\r\n" not in data:
                chunk = sock.recv(256)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    try:
        return int(data.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def vm_hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def run_once(cmd: list[str], cwd: Path, env: dict[str, str], port: int, timeout: float = 30.0) -> tuple[float, int]:
    """(ms from spawn to the first 200, peak RSS KiB after one more request to a routed path).

    LISTENING[-1] is set to the ms from spawn to the first answer of any status (503 `starting` counts).

    The extra request (a 404 through the app's router) makes servers that load their framework
    lazily (ours loads bottle after /healthz turns 200) count that memory too.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    LISTENING.append(None)
    try:
        while True:
            status = get_status(port)
            if status is not None and LISTENING[-1] is None:
                LISTENING[-1] = (time.perf_counter() - started) * 1000
            if status == 200:
                elapsed = (time.perf_counter() - started) * 1000
                break
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd} exited {proc.returncode} before answering 200")
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"{cmd} did not answer 200 within {timeout}s")
            time.sleep(0.001)
        get_status(port, "/bench-routed-path")
        rss = vm_hwm_kib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return elapsed, rss


def setup_project(workdir: Path) -> Path:
    return make_embedded_project(workdir / "reference", EMBEDDED_SERVERLESS)


SECRET_COUNT = 10
SECRETS_MANIFEST = """\
source: bench-secrets
entries:
  - domain: adapter
    key: cache
    provider: memcache
    factory: oneiric.demo.vector:MemoryVectorStore
    settings_schema: {type: object}
"""


def setup_secrets_project(workdir: Path, provider: str, options: str) -> Path:
    """The reference project plus an adapter holding SECRET_COUNT secret references, via `provider`."""
    project = copy_reference(workdir / f"secrets-{provider}", ("deployment",))
    refs = "".join(f's{i} = "secret://bench-s{i}"\n' for i in range(SECRET_COUNT))
    text = EMBEDDED_SERVERLESS.replace('provider = "env"', f'provider = "{provider}"\n{options}')
    text += f"\n[adapters.provider_settings.memcache]\n{refs}"
    write_project(project, SECRETS_MANIFEST, text, profile="serverless", manifest_name="bench.yaml")
    compile_project(project)
    return project


MOUNTED_ROW = f"oneiric mounted ({SECRET_COUNT} refs)"
DEPLOY_TABLE = '\n[deploy]\nservice = "oneiric-bench"\nregion = "us-central1"\n'


def setup_mounted_project(workdir: Path, secret_values: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """The serverless profile with its Secret Manager references delivered as Cloud Run mounts: the gcp row's
    project plus a [deploy] table; the environment is what Cloud Run gives the container of the service
    `oneiric compile` renders (build/serverless_cloudrun.yaml), its secretKeyRef variables resolved to values."""
    import yaml

    project = copy_reference(workdir / "secrets-mounted", ("deployment",))
    refs = "".join(f's{i} = "secret://bench-s{i}"\n' for i in range(SECRET_COUNT))
    text = EMBEDDED_SERVERLESS.replace('provider = "env"', 'provider = "gcp.secret_manager"\nproject_id = "oneiric-bench"')
    text += f"\n[adapters.provider_settings.memcache]\n{refs}{DEPLOY_TABLE}"
    write_project(project, SECRETS_MANIFEST, text, profile="serverless", manifest_name="bench.yaml")
    compile_project(project)
    service = yaml.safe_load((project / "build" / "serverless_cloudrun.yaml").read_text())
    env = {}
    for item in service["spec"]["template"]["spec"]["containers"][0]["env"]:
        ref = (item.get("valueFrom") or {}).get("secretKeyRef")
        env[item["name"]] = secret_values[ref["name"]] if ref else item["value"]
    return project, env


#: what SecretManagerSecrets.activate() imports (runtime/adapters/secrets_gcp.py)
_SDK_IMPORTS = ("import grpc; from google.api_core import exceptions; from google.auth import exceptions as e; "
                "from google.cloud.secretmanager_v1.services.secret_manager_service import SecretManagerServiceClient; "
                "from google.cloud.secretmanager_v1.services.secret_manager_service.transports.grpc import "
                "SecretManagerServiceGrpcTransport")


def import_cost_ms(runs: int = 11) -> tuple[float, float]:
    """Median ms that the Secret Manager adapter's SDK imports add to a bare interpreter (os._exit after)."""
    def once(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([str(VENV_PY), "-c", code + "; import os; os._exit(0)"], check=True)
        return (time.perf_counter() - started) * 1000
    bare = statistics.median(once("pass") for _ in range(runs))
    sdk = statistics.median(once(_SDK_IMPORTS) for _ in range(runs))
    return sdk - bare, bare


def setup_ff(cache_dir: Path) -> Path | None:
    """A venv with functions-framework under the cache dir; None when it cannot be installed."""
    venv = cache_dir / "ff-venv"
    exe = venv / "bin" / "functions-framework"
    if exe.exists():
        return venv
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "functions-framework"],
                       check=True, capture_output=True, timeout=600)
    except (subprocess.SubprocessError, OSError):
        return None
    return venv if exe.exists() else None


# ---------------------------------------------------------------------------------------------- rows

class Bench:
    """What a row builder gets: the scratch dir, the environment without ONEIRIC_*, the suite's Secret
    Manager fake (holding bench-s0..9 and tasks-hmac-key), a dir of the same secrets as mounted files,
    and the command-line options."""

    def __init__(self, workdir: Path, base_env: dict[str, str], fake, secrets_dir: Path, args) -> None:
        self.workdir, self.base_env, self.fake, self.secrets_dir, self.args = workdir, base_env, fake, secrets_dir, args


#: what a builder returns: (argv, cwd, env) with "{port}" in argv replaced per run, or a string: why the row
#: is skipped. PORT is set in env for every run.
Server = tuple[list[str], Path, dict[str, str]]
ORCHESTRATE = [str(VENV_PY), "-m", "oneiric.cli", "orchestrate", "--profile", "serverless", "--no-remote",
               "--http-host", "127.0.0.1"]


def row_oneiric(b: Bench) -> Server:
    return ORCHESTRATE, setup_project(b.workdir), {**b.base_env, "ONEIRIC_SECRET_TASKS_HMAC_KEY": "bench-key"}


def row_bottle(b: Bench) -> Server:
    (b.workdir / "bottle_app.py").write_text(BOTTLE_APP)
    return [str(VENV_PY), str(b.workdir / "bottle_app.py")], b.workdir, b.base_env


def row_stdlib(b: Bench) -> Server:
    (b.workdir / "stdlib_app.py").write_text(STDLIB_APP)
    return [str(VENV_PY), str(b.workdir / "stdlib_app.py")], b.workdir, b.base_env


def row_functions_framework(b: Bench) -> Server | str:
    if b.args.no_ff:
        return "skipped (--no-ff)"
    venv = setup_ff(Path(b.args.cache_dir))
    if venv is None:
        return "skipped (not installable here)"
    (b.workdir / "ff").mkdir(exist_ok=True)
    (b.workdir / "ff" / "main.py").write_text(FF_APP)
    return ([str(venv / "bin" / "functions-framework"), "--target", "hello", "--host", "127.0.0.1", "--port", "{port}"],
            b.workdir / "ff", b.base_env)


def row_oneiric_gcp(b: Bench) -> Server:
    project = setup_secrets_project(
        b.workdir, "gcp.secret_manager", f'project_id = "oneiric-bench"\nemulator_host = "{b.fake.host}"')
    return ORCHESTRATE, project, {**b.base_env, "NO_GCE_CHECK": "true"}


def row_oneiric_file(b: Bench) -> Server:
    return ORCHESTRATE, setup_secrets_project(b.workdir, "file", f'directory = "{b.secrets_dir}"'), b.base_env


def row_oneiric_mounted(b: Bench) -> Server:
    values = {f"bench-s{i}": f"value-{i}" for i in range(SECRET_COUNT)} | {"tasks-hmac-key": "bench-key"}
    project, env = setup_mounted_project(b.workdir, values)
    return ORCHESTRATE, project, {**b.base_env, **env}


def row_oneiric_postgres(b: Bench) -> Server | str:
    """`[state] backend = "postgres"`: the first 200 comes once psycopg is imported and the store connected
    (and migrated on the first run): /healthz answers 503 starting until then. The server is the test
    suite's (initdb/pg_ctl in a temp dir), stopped at exit."""
    import atexit

    from tests.support.postgres import PgServer

    server = PgServer()
    if not server.available:
        return "skipped (initdb/pg_ctl not found; apt-get install postgresql)"
    server.start()
    atexit.register(server.stop)
    project = make_embedded_project(b.workdir / "state-postgres", EMBEDDED_SERVERLESS
                                    + '\n[state]\nbackend = "postgres"\ndsn = "secret://state-dsn"\n')
    return ORCHESTRATE, project, {**b.base_env, "ONEIRIC_SECRET_TASKS_HMAC_KEY": "bench-key",
                                  "ONEIRIC_SECRET_STATE_DSN": server.database()}


GCP_ROW, FILE_ROW = f"oneiric gcp ({SECRET_COUNT} refs)", f"oneiric file ({SECRET_COUNT} refs)"
#: the table, in order: add a row by appending (name, builder)
ROWS: list[tuple[str, Callable[[Bench], "Server | str"]]] = [
    ("oneiric", row_oneiric),
    ("bottle", row_bottle),
    ("stdlib", row_stdlib),
    ("functions-framework", row_functions_framework),
    (GCP_ROW, row_oneiric_gcp),
    (FILE_ROW, row_oneiric_file),
    (MOUNTED_ROW, row_oneiric_mounted),
    ("oneiric postgres state", row_oneiric_postgres),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cache-dir", default=os.environ.get("ONEIRIC_BENCH_CACHE",
                                                              str(Path.home() / ".cache" / "oneiric-bench")))
    parser.add_argument("--no-ff", action="store_true", help="skip functions-framework")
    args = parser.parse_args(argv)
    Path(args.cache_dir).mkdir(parents=True, exist_ok=True)

    # Deployed images carry bytecode (pip and buildpacks compile at install); a working tree run with
    # PYTHONDONTWRITEBYTECODE=1 would otherwise recompile every runtime module on each start.
    import compileall

    for package in ("oneiric", "runtime"):
        compileall.compile_dir(str(ROOT / package), quiet=1)

    from tests.fakes.secretmanager import FakeSecretManager  # the suite's gRPC fake, official client on the wire

    skipped: dict[str, str] = {}
    servers: dict[str, Server] = {}
    with tempfile.TemporaryDirectory(prefix="oneiric-coldstart-") as tmp:
        workdir = Path(tmp)
        fake = FakeSecretManager("oneiric-bench").start()
        try:
            secrets_dir = workdir / "mounted-secrets"
            secrets_dir.mkdir()
            for i in range(SECRET_COUNT):
                fake.put(f"bench-s{i}", f"value-{i}")
                (secrets_dir / f"bench-s{i}").write_text(f"value-{i}\n")
            (secrets_dir / "tasks-hmac-key").write_text("bench-key\n")
            fake.put("tasks-hmac-key", "bench-key")
            base_env = {k: v for k, v in os.environ.items() if not k.startswith("ONEIRIC_") and k != "PORT"}
            bench = Bench(workdir, base_env, fake, secrets_dir, args)
            for name, build in ROWS:
                built = build(bench)
                if isinstance(built, str):
                    skipped[name] = built
                else:
                    servers[name] = built

            results: dict[str, list[tuple[float, int]]] = {name: [] for name in servers}
            listening: dict[str, list[float]] = {name: [] for name in servers}
            for _ in range(args.runs):
                for name, (cmd, cwd, env) in servers.items():
                    port = free_port()
                    argv_ = [a.replace("{port}", str(port)) for a in cmd]
                    results[name].append(run_once(argv_, cwd, dict(env, PORT=str(port)), port))
                    listening[name].append(LISTENING[-1])
        finally:
            fake.stop()

    print(f"cold start: spawn -> first 200 on /healthz, {args.runs} interleaved runs "
          f"(python {sys.version.split()[0]}, {os.cpu_count()} cpus)")
    print(f"{'server':<26}{'listening ms':>13}{'median ms':>10}{'min ms':>9}{'peak RSS MiB':>14}")
    summary = {}
    for name, runs in results.items():
        times = [t for t, _ in runs]
        rss = [r for _, r in runs]
        med, low, mib = statistics.median(times), min(times), statistics.median(rss) / 1024
        summary[name] = (med, low, mib)
        heard = statistics.median(t for t in listening[name] if t is not None)
        print(f"{name:<26}{heard:>13.1f}{med:>10.1f}{low:>9.1f}{mib:>14.1f}")
    for name, why in skipped.items():
        print(f"{name}: {why}")
    ours, bottle, stdlib = summary["oneiric"], summary["bottle"], summary["stdlib"]

    def paired(a: str, b: str) -> float:
        """Median of per-round ratios: each round runs every server back to back, so this cancels most load drift."""
        return statistics.median(x[0] / y[0] for x, y in zip(results[a], results[b]))

    print(f"ratio oneiric/stdlib: median {ours[0] / stdlib[0]:.2f}x, min {ours[1] / stdlib[1]:.2f}x, "
          f"median of per-round ratios {paired('oneiric', 'stdlib'):.2f}x")
    print(f"ratio oneiric/bottle: median {ours[0] / bottle[0]:.2f}x, min {ours[1] / bottle[1]:.2f}x, "
          f"median of per-round ratios {paired('oneiric', 'bottle'):.2f}x, RSS {ours[2] / bottle[2]:.2f}x")
    for name in ("stdlib", "functions-framework"):
        if name in summary:
            print(f"ratio {name}/bottle: median {summary[name][0] / bottle[0]:.2f}x")
    try:
        load = os.getloadavg()[0]
        print(f"load average at the end: {load:.2f} (figures on a busy machine are inflated and noisy)")
    except OSError:
        pass
    sdk_ms, bare_ms = import_cost_ms()
    if MOUNTED_ROW in summary and GCP_ROW in summary:
        mounted, gcp = summary[MOUNTED_ROW], summary[GCP_ROW]
        print(f"secrets mounted by Cloud Run (gcp.secret_manager, delivery = mounted, env from deploy render): "
              f"{mounted[0] / bottle[0]:.2f}x bottle (target <= 1.15x; the SDK path above: {gcp[0] / bottle[0]:.2f}x)")
    if GCP_ROW in summary and FILE_ROW in summary:
        gcp, file_ = summary[GCP_ROW], summary[FILE_ROW]
        print(f"secrets: google-cloud-secret-manager import adds {sdk_ms:.0f} ms to a bare interpreter ({bare_ms:.0f} ms); "
              f"gcp row - bottle = {gcp[0] - bottle[0]:.0f} ms (target <= import + one round trip); "
              f"file row / bottle = {file_[0] / bottle[0]:.2f}x (target <= 1.15x)")
    ok_time = paired("oneiric", "stdlib") <= 1.15
    ok_rss = ours[2] <= 1.1 * bottle[2]
    print(f"target first 200 <= 1.15x stdlib (per-round ratio): {'met' if ok_time else 'MISSED'}; "
          f"target peak RSS <= 1.1x bottle: {'met' if ok_rss else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
