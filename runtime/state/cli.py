"""`oneiric state migrate|status`: the state store for operators (stdlib argparse only).

`migrate` creates or upgrades the schema of the configured backend (the runtime does this itself at
start; operators who migrate before a deploy run this from CI or a laptop with the same settings and
secrets) and prints what it applied. `status` prints the backend, where it is (never a password), the
schema version and the row counts. Exit codes: 0 ok, 1 the store cannot be opened, 2 usage.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, TextIO


def _parser() -> Any:
    import argparse

    p = argparse.ArgumentParser(prog="oneiric state", description="Create, upgrade or inspect the state store.")
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_text in (("migrate", "create or upgrade the schema; prints the versions applied"),
                            ("status", "backend, location, schema version and row counts")):
        s = sub.add_parser(name, help=help_text)
        s.add_argument("--json", action="store_true")
    return p


def _default_runtime(options: Any) -> Any:
    """The runtime with its secrets adapter active (the DSN is a secret reference; no other adapter) and
    its store not opened: this command opens and migrates the store itself."""
    from runtime import activate
    from runtime.start import prepare

    rt = prepare(options)
    rt.state.autostart = False
    activate.activate(rt, only=())
    return rt


def main(argv: list[str], options: Any = None, *, build: Callable[[Any], Any] | None = None,
         out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    from runtime.state import StateConfig, StateError, open_store, schema

    try:
        rt = (build or _default_runtime)(options)
    except Exception as exc:  # StartupError and friends
        print(f"error: {exc}", file=err)
        return 1
    try:
        config = StateConfig.from_settings(rt.settings)
        store = open_store(config, cache_dir=rt.cache_dir, resolve=rt.resolve, migrate=False)
        try:
            applied = store.db.migrate() if args.command == "migrate" else []
            report: dict[str, Any] = {"backend": config.backend, "location": store.location,
                                      "schema_version": schema.current_version(store.db.execute),
                                      "latest_version": schema.VERSION}
            if args.command == "migrate":
                report["applied"] = applied
            else:
                report.update(runs=store.count_runs(), running=store.count_runs("running"),
                              dead_letters=store.count_dead_letters(), retention_days=config.retention_days)
        finally:
            store.close()
    except StateError as exc:
        print(f"error: {exc}", file=err)
        return 1
    except Exception as exc:  # a store without the schema yet (status before migrate)
        print(f"error: state store: {type(exc).__name__}: {exc} (run `oneiric state migrate`)", file=err)
        return 1
    finally:
        from runtime import activate

        activate.close(rt)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True), file=out)
    elif args.command == "migrate":
        done = ", ".join(map(str, report["applied"])) or "nothing (already current)"
        print(f"state store {report['location']} ({report['backend']}): applied {done}; schema version "
              f"{report['schema_version']}", file=out)
    else:
        for key, value in report.items():
            print(f"{key}: {value}", file=out)
    return 0
