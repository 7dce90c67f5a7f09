"""`workflow enqueue|run|list|status`: the runtime CLI verb for workflows (argparse, stdlib only).

Exit codes: 0 ok, 1 failure (unknown workflow or run, enqueue refused, run
failed), 2 usage error.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, TextIO

from runtime.logs import utc_now_text

USAGE = ("workflow {enqueue KEY [--context JSON] [--run-id ID] [--json] | run KEY [...] | list [--dead] |"
         " status RUN_ID}")


class _Usage(Exception):
    pass


def _parser() -> Any:
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # raise instead of exiting, so main() owns exit codes
            raise _Usage(f"{self.prog}: {message}")

    p = Parser(prog="oneiric workflow", description="Enqueue, run and inspect workflow runs.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name, help_text in (("enqueue", "queue a run through the configured queue (queue_category)"),
                            ("run", "run a workflow now, in this process")):
        s = sub.add_parser(name, help=help_text)
        s.add_argument("key", metavar="KEY", help="workflow key")
        s.add_argument("--context", default=None, help="JSON object passed to every task as its context")
        s.add_argument("--run-id", default=None, help="idempotency key of the run (default: a new uuid)")
        s.add_argument("--json", action="store_true", help="print JSON")
    s = sub.add_parser("list", help="the compiled workflows and their last run (--dead: the dead letters)")
    s.add_argument("--json", action="store_true")
    s.add_argument("--dead", action="store_true", help="list dead-lettered deliveries instead, newest first")
    s.add_argument("--limit", type=int, default=100, help="at most this many dead letters (1..10000)")
    s = sub.add_parser("status", help="a run and its nodes")
    s.add_argument("run_id", metavar="RUN_ID")
    s.add_argument("--json", action="store_true")
    return p


def _context(text: str | None) -> dict[str, Any]:
    """--context under the endpoint's own rules (runtime.workflows.request)."""
    from runtime.workflows.request import BadRequest, parse_context

    try:
        return parse_context(text)
    except BadRequest as exc:
        raise _Usage(str(exc)) from None


def _run_id(text: str | None, where: str) -> str | None:
    from runtime.workflows.request import BadRequest, check_run_id

    try:
        check_run_id(text, where)
    except BadRequest as exc:
        raise _Usage(str(exc)) from None
    return text


def _default_runtime(options: Any) -> Any:
    from runtime.start import build_runtime

    return build_runtime(options)


def _reading_runtime(options: Any, adapters: tuple[str, ...]) -> Any:
    """For `list` and `status`, which only read: the secrets adapter (the state store's DSN may be a secret
    reference) and `adapters` are activated, so an operator's machine need not reach every adapter."""
    from runtime import activate
    from runtime.start import prepare

    rt = prepare(options)
    activate.activate(rt, only=adapters)
    return rt


#: what each reading subcommand activates besides the secrets adapter (status reports the queue's view)
READS = {"list": (), "status": ("queue",)}


def main(argv: list[str], options: Any = None, *, build: Callable[[Any], Any] | None = None,
         out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run `workflow ...` (argv excludes the verb); `build(options)` makes the Runtime."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = _parser().parse_args(argv)
        context = _context(getattr(args, "context", None))
        _run_id(getattr(args, "run_id", None), "RUN_ID" if args.command == "status" else "--run-id")
    except _Usage as exc:
        print(f"{exc}\nusage: oneiric {USAGE}", file=err)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    try:
        if build is None and args.command in READS:
            rt = _reading_runtime(options, READS[args.command])
        else:
            rt = (build or _default_runtime)(options)
    except Exception as exc:  # StartupError and friends: the message is for the operator
        print(f"error: {exc}", file=err)
        return 1
    from runtime.state import StateError
    from runtime.workflows.service import EnqueueError, UnknownWorkflowError, service_for

    svc = None
    try:
        svc = service_for(rt)
        if args.command == "enqueue":
            return _enqueue(svc, args, context, out, err)
        if args.command == "run":
            return _run(svc, args, context, out, err)
        if args.command == "list":
            return _list(svc, args, out)
        return _status(svc, args, out, err)
    except UnknownWorkflowError as exc:
        known = ", ".join(sorted(svc.engine.workflows())) or "none"
        print(f"error: unknown workflow {exc.args[0]!r} (known: {known})", file=err)
        return 1
    except EnqueueError as exc:
        print(f"error: {exc}", file=err)
        return 1
    except StateError as exc:  # a corrupt, unreadable or unreachable store: its message names it
        print(f"error: {exc}", file=err)
        return 1
    except Exception as exc:  # anything else is still one line for the operator, never a traceback
        print(f"error: {type(exc).__name__}: {exc}", file=err)
        return 1
    finally:
        from runtime.workflows.service import stop

        try:
            stop(rt)
            close = getattr(rt, "close", None)
            if close is not None:
                close()
        except Exception:  # closing a broken store must not turn a clean error into a traceback
            pass


def _enqueue(svc: Any, args: Any, context: dict, out: TextIO, err: TextIO) -> int:
    record = svc.enqueue(args.key, context=context, run_id=args.run_id)
    try:
        for warning in svc.delivery_warnings(svc.queue(args.key), args.key):
            print(f"warning: {warning}", file=err)
    except Exception:  # warnings are advice; the task is queued already
        pass
    if args.json:
        print(json.dumps(record, indent=2, sort_keys=True), file=out)
    else:
        dedup = " (already queued: nothing new)" if record.get("deduplicated") else ""
        print(f"queued workflow {record['workflow']} run {record['run_id']} as task {record['task_name']} "
              f"on {record['queue_category']} ({record['queue_provider']}) at {record['queued_at']}{dedup}", file=out)
    return 0


def _run(svc: Any, args: Any, context: dict, out: TextIO, err: TextIO) -> int:
    claim, outcome = svc.run_now(args.key, context=context, run_id=args.run_id)
    run = claim.run
    if outcome is None:
        if claim.outcome == "completed":
            body = {"workflow": run.workflow, "run_id": run.run_id, "status": "succeeded", "result": run.result,
                    "deduplicated": True}
            print(json.dumps(body, indent=2, sort_keys=True) if args.json else
                  f"run {run.run_id} already succeeded; stored result: {json.dumps(run.result, sort_keys=True)}",
                  file=out)
            return 0
        print(f"error: run {run.run_id} is in progress elsewhere", file=err)
        return 1
    body = {"workflow": run.workflow, "run_id": run.run_id, "status": outcome.status, "result": outcome.result,
            "error": outcome.error, "deduplicated": False}
    if args.json:
        print(json.dumps(body, indent=2, sort_keys=True), file=out)
    elif outcome.status == "succeeded":
        print(f"run {run.run_id} of {run.workflow} succeeded: {json.dumps(outcome.result, sort_keys=True)}", file=out)
    else:
        print(f"run {run.run_id} of {run.workflow} {outcome.status}: {outcome.error}", file=out)
    return 0 if outcome.status == "succeeded" else 1


def _list(svc: Any, args: Any, out: TextIO) -> int:
    if args.dead:
        return _dead(svc, args, out)
    rows = []
    for key, entry in sorted(svc.engine.workflows().items()):
        nodes = [n.id for n in svc.engine.plan(key).order]
        last = svc.store.list_runs(workflow=key, limit=1)
        rows.append({"workflow": key, "provider": entry.provider, "nodes": nodes,
                     "last_run": ({"run_id": last[0].run_id, "status": last[0].status} if last else None)})
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True), file=out)
    else:
        for r in rows:
            last = f"last run {r['last_run']['run_id']} {r['last_run']['status']}" if r["last_run"] else "no runs"
            print(f"{r['workflow']}: {' -> '.join(r['nodes'])} ({last})", file=out)
        if not rows:
            print("no workflows in the compiled manifest", file=out)
    return 0


def _queued(svc: Any, run_id: str) -> dict[str, Any] | None:
    """A run enqueued from this cache dir that no delivery has started yet: its enqueue record, with the
    queue's own view of the task (attempts, last error) when the queue can tell (the local one can)."""
    from runtime.workflows.messages import task_name_for

    record = svc.store.enqueued(task_name_for(run_id)) or svc.store.enqueued(run_id)
    if record is None:
        return None
    body = {**record, "status": "queued", "detail": "queued, not yet delivered"}
    try:
        adapter = svc.queue(record["workflow"]).adapter
        task = adapter.task(record["task_name"]) if hasattr(adapter, "task") else None
    except Exception:  # the queue's view is a bonus; the enqueue record already answers
        task = None
    if task:
        body["delivery"] = {k: task.get(k) for k in ("status", "attempts", "last_status", "last_error")}
    return body


def _dead(svc: Any, args: Any, out: TextIO) -> int:
    """Deliveries that can never succeed, as recorded by the endpoint (runtime.workflows.endpoint._Never)."""
    limit = max(1, min(int(args.limit), 10000))
    letters = [{"key": d.key, "workflow": d.workflow, "run_id": d.run_id, "task_name": d.task_name,
                "reason": d.reason, "detail": d.detail, "deliveries": d.deliveries,
                "created_at": utc_now_text(d.created_at, digits=0)} for d in svc.store.dead_letters(limit)]
    if args.json:
        print(json.dumps(letters, indent=2, sort_keys=True), file=out)
    elif not letters:
        print(f"no dead letters in {svc.store.location}", file=out)
    else:
        for d in letters:
            print(f"{d['created_at']} {d['key']}: {d['reason']} ({d['deliveries']} deliver"
                  f"{'y' if d['deliveries'] == 1 else 'ies'}; workflow {d['workflow'] or '-'}, run {d['run_id'] or '-'})"
                  f": {d['detail']}", file=out)
    return 0


def _status(svc: Any, args: Any, out: TextIO, err: TextIO) -> int:
    run, nodes = svc.status(args.run_id)
    if run is None:
        queued = _queued(svc, args.run_id)
        if queued is None:
            print(f"error: no run {args.run_id!r} in {svc.store.location}", file=err)
            return 1
        if args.json:
            print(json.dumps(queued, indent=2, sort_keys=True), file=out)
        else:
            delivery = queued.get("delivery") or {}
            tried = ""
            if delivery.get("attempts"):
                last = str(delivery.get("last_error") or "").strip().split("\n")[0][:300]
                last = last or (f"HTTP {delivery['last_status']}" if delivery.get("last_status") else "")
                tried = f"; {delivery['attempts']} delivery attempt(s)" + (f", last error: {last}" if last else "")
            print(f"run {queued['run_id']} ({queued['workflow']}): queued, not yet delivered (task "
                  f"{queued['task_name']} on {queued['queue_category']} ({queued['queue_provider']}) at "
                  f"{queued['queued_at']}){tried}", file=out)
        return 0
    body = {"run_id": run.run_id, "workflow": run.workflow, "task_name": run.task_name, "status": run.status,
            "attempts": run.attempts, "created_at": run.created_at, "updated_at": run.updated_at,
            "error": run.error, "result": run.result,
            "nodes": [{"id": n.node_id, "status": n.status, "attempts": n.attempts, "output": n.output,
                       "error": n.error} for n in nodes]}
    if args.json:
        print(json.dumps(body, indent=2, sort_keys=True), file=out)
    else:
        print(f"run {run.run_id} ({run.workflow}): {run.status}, {run.attempts} attempt(s)"
              + (f", error: {run.error}" if run.error else ""), file=out)
        for n in body["nodes"]:
            print(f"  {n['id']}: {n['status']} after {n['attempts']} attempt(s)"
                  + (f": {n['error']}" if n["error"] else ""), file=out)
    return 0
