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
Prints a table and the ratios to bare bottle; targets: ours <= 1.15x bottle and <= 28 MiB.

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cache-dir", default=os.environ.get("ONEIRIC_BENCH_CACHE",
                                                              str(Path.home() / ".cache" / "oneiric-bench")))
    parser.add_argument("--no-ff", action="store_true", help="skip functions-framework")
    args = parser.parse_args(argv)
    cache_dir = Path(args.cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)

    # Deployed images carry bytecode (pip and buildpacks compile at install); a working tree run with
    # PYTHONDONTWRITEBYTECODE=1 would otherwise recompile every runtime module on each start.
    import compileall

    for package in ("oneiric", "runtime"):
        compileall.compile_dir(str(ROOT / package), quiet=1)

    with tempfile.TemporaryDirectory(prefix="oneiric-coldstart-") as tmp:
        workdir = Path(tmp)
        project = setup_project(workdir)
        (workdir / "bottle_app.py").write_text(BOTTLE_APP)
        (workdir / "stdlib_app.py").write_text(STDLIB_APP)
        (workdir / "ff").mkdir()
        (workdir / "ff" / "main.py").write_text(FF_APP)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("ONEIRIC_") and k != "PORT"}
        servers: dict[str, tuple[list[str], Path, dict[str, str]]] = {
            "oneiric": ([str(VENV_PY), "-m", "oneiric.cli", "orchestrate", "--profile", "serverless", "--no-remote",
                         "--http-host", "127.0.0.1"], project,
                        {**base_env, "ONEIRIC_SECRET_TASKS_HMAC_KEY": "bench-key"}),
            "bottle": ([str(VENV_PY), str(workdir / "bottle_app.py")], workdir, base_env),
            "stdlib": ([str(VENV_PY), str(workdir / "stdlib_app.py")], workdir, base_env),
        }
        from tests.fakes.secretmanager import FakeSecretManager  # the suite's gRPC fake, official client on the wire

        fake = FakeSecretManager("oneiric-bench").start()
        secrets_dir = workdir / "mounted-secrets"
        secrets_dir.mkdir()
        for i in range(SECRET_COUNT):
            fake.put(f"bench-s{i}", f"value-{i}")
            (secrets_dir / f"bench-s{i}").write_text(f"value-{i}\n")
        (secrets_dir / "tasks-hmac-key").write_text("bench-key\n")
        fake.put("tasks-hmac-key", "bench-key")
        gcp_project = setup_secrets_project(
            workdir, "gcp.secret_manager", f'project_id = "oneiric-bench"\nemulator_host = "{fake.host}"')
        file_project = setup_secrets_project(workdir, "file", f'directory = "{secrets_dir}"')
        orchestrate = [str(VENV_PY), "-m", "oneiric.cli", "orchestrate", "--profile", "serverless", "--no-remote",
                       "--http-host", "127.0.0.1"]
        servers[f"oneiric gcp ({SECRET_COUNT} refs)"] = (orchestrate, gcp_project,
                                                         {**base_env, "NO_GCE_CHECK": "true"})
        servers[f"oneiric file ({SECRET_COUNT} refs)"] = (orchestrate, file_project, base_env)
        values = {f"bench-s{i}": f"value-{i}" for i in range(SECRET_COUNT)} | {"tasks-hmac-key": "bench-key"}
        mounted_project, mounted_env = setup_mounted_project(workdir, values)
        servers[MOUNTED_ROW] = (orchestrate, mounted_project, {**base_env, **mounted_env})
        ff_note = ""
        if not args.no_ff:
            venv = setup_ff(cache_dir)
            if venv is not None:
                servers["functions-framework"] = ([str(venv / "bin" / "functions-framework"), "--target", "hello",
                                                   "--host", "127.0.0.1"], workdir / "ff", base_env)
            else:
                ff_note = "functions-framework: skipped (not installable here)"
        else:
            ff_note = "functions-framework: skipped (--no-ff)"

        results: dict[str, list[tuple[float, int]]] = {name: [] for name in servers}
        listening: dict[str, list[float]] = {name: [] for name in servers}
        try:
            for _ in range(args.runs):
                for name, (cmd, cwd, env) in servers.items():
                    port = free_port()
                    run_env = dict(env, PORT=str(port))
                    argv_ = list(cmd)
                    if name == "functions-framework":
                        argv_ += ["--port", str(port)]
                    results[name].append(run_once(argv_, cwd, run_env, port))
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
    if ff_note:
        print(ff_note)
    ours, bottle = summary["oneiric"], summary["bottle"]
    ratio_med, ratio_min = ours[0] / bottle[0], ours[1] / bottle[1]
    # each round runs every server back to back, so a per-round ratio cancels most load drift
    paired = statistics.median(o[0] / b[0] for o, b in zip(results["oneiric"], results["bottle"]))
    print(f"ratio oneiric/bottle: median {ratio_med:.2f}x, min {ratio_min:.2f}x, "
          f"median of per-round ratios {paired:.2f}x, RSS {ours[2] / bottle[2]:.2f}x")
    for name in ("stdlib", "functions-framework"):
        if name in summary:
            print(f"ratio {name}/bottle: median {summary[name][0] / bottle[0]:.2f}x")
    try:
        load = os.getloadavg()[0]
        print(f"load average at the end: {load:.2f} (figures on a busy machine are inflated and noisy)")
    except OSError:
        pass
    sdk_ms, bare_ms = import_cost_ms()
    gcp, file_ = summary[f"oneiric gcp ({SECRET_COUNT} refs)"], summary[f"oneiric file ({SECRET_COUNT} refs)"]
    mounted = summary[MOUNTED_ROW]
    print(f"secrets mounted by Cloud Run (gcp.secret_manager, delivery = mounted, env from deploy render): "
          f"{mounted[0] / bottle[0]:.2f}x bottle (target <= 1.15x; the SDK path above: {gcp[0] / bottle[0]:.2f}x)")
    print(f"secrets: google-cloud-secret-manager import adds {sdk_ms:.0f} ms to a bare interpreter ({bare_ms:.0f} ms); "
          f"gcp row - bottle = {gcp[0] - bottle[0]:.0f} ms (target <= import + one round trip); "
          f"file row / bottle = {file_[0] / bottle[0]:.2f}x (target <= 1.15x)")
    ok_time, ok_rss = ratio_med <= 1.15, ours[2] <= 28
    print(f"target ours <= 1.15x bottle: {'met' if ok_time else 'MISSED'}; "
          f"target ours <= 28 MiB: {'met' if ok_rss else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
