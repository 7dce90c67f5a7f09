"""Load on a real `orchestrate`: signed POST /tasks/workflow and GET /healthz together, then count run rows.

    .venv/bin/python bench/load.py [--duration 20] [--clients 80] [--healthz-share 0.2] [--json] [--no-record]

Builds bench/tasks.py's throwaway project (a 3-node no-op workflow, HMAC auth, runs durable in SQLite),
starts `python -m oneiric.cli orchestrate` on a free 127.0.0.1 port and drives it with `--clients`
concurrent connections for `--duration` seconds: a `--healthz-share` of them poll /healthz, the rest
post a freshly signed delivery with a new run id each time. Then it counts the run rows:
throughput, p50/p99 per route, errors, lost runs (answered 200, not stored as succeeded),
duplicated node executions (from the store's per-node attempt counts) and rows nobody was answered for.

Second phase, SIGTERM under load: the same load on a restarted server, SIGTERM at half time; the
clients keep going until the server is gone. Then a new server starts and every delivery that did
not get a 200 is redelivered (as Cloud Tasks retries a 503 or a dropped connection). Every accepted
run must be complete, none lost, none executed twice.

Writes a record for docs/reliability.md (scripts/reliability.py) unless --no-record.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.tasks import KEY, _one, make_project, wait_healthy  # noqa: E402  (the workflows bench)
from runtime.tasks_auth import sign  # noqa: E402
from tests.support.env import clean_env, free_port  # noqa: E402

WORKFLOW = "noop3"


def start_server(root: Path, log_name: str) -> tuple[subprocess.Popen, int, object]:
    port = free_port()
    env = clean_env(ONEIRIC_CONFIG=str(root / "config" / "bench.toml"), ONEIRIC_SECRET_TASKS_HMAC_KEY=KEY,
                    PORT=str(port))
    log = open(root / log_name, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "oneiric.cli", "orchestrate", "--no-remote",
                             "--http-host", "127.0.0.1"], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
    return proc, port, log


def delivery(port: int, run_id: str, retry: int = 0) -> tuple[bytes, str]:
    body = json.dumps({"workflow": WORKFLOW, "run_id": run_id, "context": {}}).encode()
    head = (f"POST /tasks/workflow HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\nX-CloudTasks-QueueName: load\r\n"
            f"X-CloudTasks-TaskName: {run_id}\r\nX-CloudTasks-TaskRetryCount: {retry}\r\n"
            f"X-Oneiric-Signature: {sign(KEY.encode(), body)}\r\n\r\n")
    return body, head


def healthz_request(port: int) -> str:
    return f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"


async def _drive(port: int, duration: float, clients: int, healthz_share: float, prefix: str,
                 sigterm: tuple[subprocess.Popen, float] | None) -> dict:
    stop_at = time.monotonic() + duration
    counter = iter(range(10 ** 9))
    lat = {"post": [], "healthz": []}
    codes = {"post": {}, "healthz": {}}
    answers: dict[str, int | str] = {}  # run id -> HTTP status, or the exception name when unanswered
    n_health = round(clients * healthz_share)

    async def poster() -> None:
        while time.monotonic() < stop_at:
            run_id = f"{prefix}-{next(counter)}"
            body, head = delivery(port, run_id)
            t0 = time.perf_counter()
            try:
                code = await asyncio.wait_for(_one(port, body, head), 30)
            except (OSError, ValueError, IndexError, asyncio.TimeoutError) as exc:
                name = type(exc).__name__
                codes["post"][name] = codes["post"].get(name, 0) + 1
                answers[run_id] = name
                if isinstance(exc, ConnectionRefusedError):
                    await asyncio.sleep(0.05)
                continue
            lat["post"].append(time.perf_counter() - t0)
            codes["post"][str(code)] = codes["post"].get(str(code), 0) + 1
            answers[run_id] = code

    async def poller() -> None:
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            try:
                code = await asyncio.wait_for(_one(port, b"", healthz_request(port)), 30)
            except (OSError, ValueError, IndexError, asyncio.TimeoutError) as exc:
                name = type(exc).__name__
                codes["healthz"][name] = codes["healthz"].get(name, 0) + 1
                if isinstance(exc, ConnectionRefusedError):
                    await asyncio.sleep(0.05)
                continue
            lat["healthz"].append(time.perf_counter() - t0)
            codes["healthz"][str(code)] = codes["healthz"].get(str(code), 0) + 1

    async def terminator() -> None:
        proc, at = sigterm
        await asyncio.sleep(at)
        proc.send_signal(signal.SIGTERM)

    started = time.monotonic()
    jobs = [poster() for _ in range(clients - n_health)] + [poller() for _ in range(n_health)]
    if sigterm is not None:
        jobs.append(terminator())
    await asyncio.gather(*jobs)
    elapsed = time.monotonic() - started
    out = {"elapsed_s": elapsed, "answers": answers, "codes": codes, "clients": clients,
           "healthz_clients": n_health}
    for route in ("post", "healthz"):
        values = sorted(lat[route])
        q = statistics.quantiles(values, n=100) if len(values) > 1 else [values[0] if values else 0.0] * 99
        ok = codes[route].get("200", 0)
        out[route] = {"requests": len(values), "ok": ok, "rps": ok / elapsed if elapsed else 0.0,
                      "p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000,
                      "errors": sum(v for k, v in codes[route].items() if k != "200")}
    return out


def drive(port: int, duration: float, clients: int, healthz_share: float, prefix: str,
          sigterm: tuple[subprocess.Popen, float] | None = None) -> dict:
    return asyncio.run(_drive(port, duration, clients, healthz_share, prefix, sigterm))


def store_counts(root: Path, prefix: str) -> dict:
    """Rows of the runs whose id starts with `prefix`: status, node rows and node executions."""
    with sqlite3.connect(root / ".oneiric_cache" / "workflow_runs.sqlite", timeout=30) as db:
        runs = dict(db.execute("SELECT run_id, status FROM runs WHERE run_id LIKE ?", (prefix + "-%",)).fetchall())
        nodes = {r: (n, a) for r, n, a in db.execute(
            "SELECT run_id, COUNT(*), SUM(attempts) FROM nodes WHERE status='succeeded' AND run_id LIKE ? "
            "GROUP BY run_id", (prefix + "-%",))}
    return {"runs": runs, "nodes": nodes}


def verify(answers: dict[str, int | str], counts: dict) -> dict:
    """Lost: answered 200 but not a succeeded run with 3 node rows. Duplicated: node executions beyond one each."""
    accepted = {r for r, c in answers.items() if c == 200}
    runs, nodes = counts["runs"], counts["nodes"]
    lost = sorted(r for r in accepted if runs.get(r) != "succeeded" or nodes.get(r, (0, 0))[0] != 3)
    duplicated = sum(a - n for n, a in nodes.values())
    return {"accepted": len(accepted), "stored_succeeded": sum(1 for s in runs.values() if s == "succeeded"),
            "lost": len(lost), "lost_ids": lost[:10], "duplicated_node_executions": duplicated,
            "unanswered_rows": len(set(runs) - set(answers)),
            "not_succeeded": sum(1 for s in runs.values() if s != "succeeded")}


def steady(root: Path, duration: float, clients: int, healthz_share: float) -> dict:
    proc, port, log = start_server(root, "steady.log")
    try:
        drive(port, min(1.0, duration / 10), clients, healthz_share, "warm")
        result = drive(port, duration, clients, healthz_share, "steady")
    finally:
        proc.terminate()
        code = proc.wait(timeout=30)
        log.close()
    result["server_exit"] = code
    result["store"] = verify(result["answers"], store_counts(root, "steady"))
    return result


def sigterm_under_load(root: Path, duration: float, clients: int, healthz_share: float) -> dict:
    proc, port, log = start_server(root, "sigterm.log")
    try:
        result = drive(port, duration, clients, healthz_share, "term", sigterm=(proc, duration / 2))
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    result["server_exit"] = code
    before = verify(result["answers"], store_counts(root, "term"))
    # a new instance; every delivery without a 200 is redelivered, as Cloud Tasks would
    retry = [r for r, c in result["answers"].items() if c != 200]
    proc, port, log = start_server(root, "restart.log")
    redelivered: dict[str, int] = {}
    try:
        async def again() -> None:
            sem = asyncio.Semaphore(16)

            async def one(run_id: str) -> None:
                async with sem:
                    body, head = delivery(port, run_id, retry=1)
                    try:
                        redelivered[run_id] = await asyncio.wait_for(_one(port, body, head), 30)
                    except (OSError, ValueError, IndexError, asyncio.TimeoutError) as exc:
                        redelivered[run_id] = type(exc).__name__

            await asyncio.gather(*(one(r) for r in retry))

        asyncio.run(again())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    final_answers = {**result["answers"], **redelivered}
    after = verify(final_answers, store_counts(root, "term"))
    result.update(before_restart=before, after_redelivery=after, redelivered=len(retry),
                  redelivery_codes={str(k): list(redelivered.values()).count(k) for k in set(redelivered.values())})
    return result


def _fmt_codes(codes: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(codes.items()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=20.0, help="seconds of steady load (default 20)")
    p.add_argument("--sigterm-duration", type=float, default=None, help="seconds of the SIGTERM phase "
                   "(default: duration / 2, at most 10)")
    p.add_argument("--clients", type=int, default=80, help="concurrent clients (default 80)")
    p.add_argument("--healthz-share", type=float, default=0.2, help="share of clients polling /healthz (0.2)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-record", action="store_true", help="do not write a docs/reliability.md record")
    args = p.parse_args(argv)
    term_duration = args.sigterm_duration or min(10.0, args.duration / 2)
    with tempfile.TemporaryDirectory(prefix="oneiric-load-") as tmp:
        root = Path(tmp)
        make_project(root)
        first = steady(root, args.duration, args.clients, args.healthz_share)
        second = sigterm_under_load(root, term_duration, args.clients, args.healthz_share)
    for r in (first, second):
        r.pop("answers")
    s, t = first["store"], second["after_redelivery"]
    ok = (s["lost"] == 0 and s["duplicated_node_executions"] == 0 and first["post"]["errors"] == 0
          and first["healthz"]["errors"] == 0 and t["lost"] == 0 and t["duplicated_node_executions"] == 0
          and second["before_restart"]["lost"] == 0 and t["not_succeeded"] == 0 and second["server_exit"] == 0)
    report = {"duration_s": args.duration, "clients": args.clients, "steady": first, "sigterm": second, "ok": ok}
    command = f"bench/load.py --duration {args.duration:g} --clients {args.clients}"
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
    else:
        print(f"{args.clients} clients x {args.duration:g} s on 127.0.0.1 ({first['healthz_clients']} on /healthz), "
              f"signed POST /tasks/workflow ({WORKFLOW}), runs durable in SQLite")
        for route in ("post", "healthz"):
            r = first[route]
            print(f"  {route:8s} {r['rps']:8.1f} ok/s  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
                  f"errors {r['errors']}  (codes {_fmt_codes(first['codes'][route])})")
        print(f"  store: {s['accepted']} answered 200, {s['stored_succeeded']} succeeded rows; lost {s['lost']}, "
              f"duplicated node executions {s['duplicated_node_executions']}, rows nobody was answered for "
              f"{s['unanswered_rows']}")
        b = second["before_restart"]
        print(f"SIGTERM at {term_duration / 2:g} s of {term_duration:g} s: server exit {second['server_exit']}; "
              f"answers {_fmt_codes(second['codes']['post'])}; {b['accepted']} accepted, lost {b['lost']}")
        print(f"  after restart + {second['redelivered']} redeliveries ({_fmt_codes(second['redelivery_codes'])}): "
              f"{t['accepted']} accepted, {t['stored_succeeded']} succeeded, lost {t['lost']}, duplicated node "
              f"executions {t['duplicated_node_executions']}, not succeeded {t['not_succeeded']}")
        print("OK" if ok else "NOT OK")
    if not args.no_record:
        from scripts.reliability import write_record

        post, health = first["post"], first["healthz"]
        b = second["before_restart"]
        write_record(f"bench/load.py ({args.clients} clients)", area="load", source="bench", command=command,
                     injects=f"{args.clients} concurrent clients for {args.duration:g} s ({first['healthz_clients']} "
                             f"on /healthz, the rest signed POST /tasks/workflow), then {term_duration:g} s with "
                             "SIGTERM at half time, restart and redelivery of everything not answered 200",
                     must_hold="0 errors, 0 lost runs, 0 duplicated node executions; after SIGTERM every accepted "
                               "run complete, none lost, server exit 0",
                     figure=f"{post['rps']:.0f} runs/s (p99 {post['p99_ms']:.0f} ms) + {health['rps']:.0f} healthz/s "
                            f"(p99 {health['p99_ms']:.0f} ms), {post['errors'] + health['errors']} errors, "
                            f"{s['accepted']} runs: lost {s['lost']}, duplicated {s['duplicated_node_executions']}; "
                            f"SIGTERM: {b['accepted']} accepted before, {second['redelivered']} redelivered, lost "
                            f"{t['lost']}, duplicated {t['duplicated_node_executions']}",
                     outcome="passed" if ok else "failed",
                     numbers={"steady": {k: first[k] for k in ("post", "healthz", "store")},
                              "sigterm": {k: second[k] for k in ("before_restart", "after_redelivery", "redelivered",
                                                                   "server_exit")}})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
