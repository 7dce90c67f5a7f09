"""Runtime verbs (orchestrate, health, supervisor-info, activity, workflow, state): parse, wire, run; argparse only."""

from __future__ import annotations

import os
import sys
from typing import Any

#: Global options valid before the verb (and, for convenience, after it).
_GLOBAL_VALUE = ("--config", "--profile")
#: The runtime's verbs; `oneiric.cli` routes these here and everything else to the compiler.
VERBS = ("orchestrate", "health", "supervisor-info", "activity", "workflow", "state")


class UsageError(Exception):
    pass


def split_global(argv: list[str]) -> tuple[dict[str, Any], str | None, list[str]]:
    """(global options, verb, the verb's own arguments)."""
    options: dict[str, Any] = {"config": None, "profile": None, "demo": False}
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in _GLOBAL_VALUE:
            if not eq:
                if i + 1 >= len(argv):
                    raise UsageError(f"{name} needs a value")
                value = argv[i + 1]
                i += 1
            options[name[2:]] = value
        elif arg == "--demo":
            options["demo"] = True
        elif arg.startswith("-"):
            raise UsageError(f"unknown global option {arg} (verb options go after the verb)")
        else:
            return options, arg, argv[i + 1:]
        i += 1
    return options, None, []


def _parser(verb: str, description: str):
    import argparse

    parser = argparse.ArgumentParser(prog=f"oneiric {verb}", description=description)
    parser.add_argument("--config", default=argparse.SUPPRESS, help="settings TOML or profile artifact (ONEIRIC_CONFIG)")
    parser.add_argument("--profile", default=argparse.SUPPRESS, help="profile name (ONEIRIC_PROFILE)")
    parser.add_argument("--demo", action="store_true", default=argparse.SUPPRESS,
                        help="use the bundled example project")
    return parser


def _options(global_opts: dict[str, Any], ns: Any, **extra: Any):
    from runtime.start import RuntimeOptions

    opts = RuntimeOptions(config=getattr(ns, "config", None) or global_opts["config"],
                          profile=getattr(ns, "profile", None) or global_opts["profile"],
                          demo=bool(getattr(ns, "demo", False) or global_opts["demo"]))
    for key, value in extra.items():
        setattr(opts, key, value)
    return opts


def _emit(data: dict[str, Any], as_json: bool) -> None:
    import json

    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    else:
        for key, value in data.items():
            text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else value
            sys.stdout.write(f"{key}: {text}\n")
    sys.stdout.flush()


# ---------------------------------------------------------------- verbs

#: orchestrate's options: name -> (attribute, takes a value, its default)
_ORCHESTRATE_OPTIONS = {
    "--config": ("config", True, None), "--profile": ("profile", True, None), "--demo": ("demo", False, False),
    "--no-remote": ("no_remote", False, False), "--manifest": ("manifest", True, None),
    "--health-path": ("health_path", True, None), "--http-port": ("http_port", True, None),
    "--http-host": ("http_host", True, "0.0.0.0"), "--no-http": ("no_http", False, False),
    "--no-watch": ("no_watch", False, False),
}


def _orchestrate_fast(argv: list[str]) -> Any:
    """orchestrate's arguments read without argparse, whose import and help formatter cost a cold start
    about 5 ms before the first 200 (bench/coldstart.py); None for anything but exactly spelled options
    with well-formed values (abbreviations, --help, mistakes), which argparse then parses and reports."""
    import types

    ns = types.SimpleNamespace(**{attr: default for attr, _, default in _ORCHESTRATE_OPTIONS.values()})
    i = 0
    while i < len(argv):
        name, eq, value = argv[i].partition("=")
        if name not in _ORCHESTRATE_OPTIONS:
            return None
        attr, takes_value, _ = _ORCHESTRATE_OPTIONS[name]
        if not takes_value:
            if eq:
                return None
            setattr(ns, attr, True)
        else:
            if not eq:
                i += 1
                if i >= len(argv):
                    return None
                value = argv[i]
            if value.startswith("-") and not (attr == "http_port" and value[1:].isdigit()):
                return None
            if attr == "http_port":
                try:
                    value = int(value)
                except ValueError:
                    return None
            setattr(ns, attr, value)
        i += 1
    return ns


def orchestrate_parser():
    parser = _parser("orchestrate", "Serve the compiled profile: /healthz, /tasks/workflow, the Service Supervisor.")
    parser.add_argument("--no-remote", action="store_true", help="never refresh the manifest from [remote]")
    parser.add_argument("--manifest", help="manifest artifact to serve (must match the profile's pinned digest)")
    parser.add_argument("--health-path", help="where to write runtime_health.json")
    parser.add_argument("--http-port", type=int, help="port (default: $PORT, then [http] port, then 8080)")
    parser.add_argument("--http-host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    parser.add_argument("--no-http", action="store_true", help="run without the HTTP server")
    parser.add_argument("--no-watch", action="store_true", help="do not watch build/ for new artifacts")
    return parser


def cmd_orchestrate(global_opts: dict[str, Any], argv: list[str]) -> int:
    """Serve the compiled profile: /healthz, /tasks/workflow, the supervisor."""
    ns = _orchestrate_fast(argv)
    if ns is None:
        ns = orchestrate_parser().parse_args(argv)
    opts = _options(global_opts, ns, manifest=ns.manifest, health_path=ns.health_path, no_remote=ns.no_remote,
                    http_port=ns.http_port, http_host=ns.http_host, no_http=ns.no_http, no_watch=ns.no_watch)
    from runtime.orchestrate import orchestrate

    return orchestrate(opts)


def supervisor_info(rt: Any) -> dict[str, Any]:
    """The guide's keys first, then which layer decided and the inputs it weighed."""
    from runtime.settings import SupervisorDecision

    toggles = rt.profile.profile.toggles
    decision = SupervisorDecision(rt.profile, rt.environ)
    return {
        "profile_default": rt.profile.profile.base,
        "runtime_config": rt.profile.profile.name,
        "env_override": decision.env_value,
        "supervisor_enabled": rt.supervisor_enabled,
        "watchers_enabled": rt.watchers_enabled,
        "remote_enabled": rt.remote_enabled,
        "inline_manifest_only": toggles.inline_manifest_only,
        "decided_by": decision.layer,
        "decided_at": decision.at,
        "profile_supervisor_enabled": toggles.supervisor_enabled,
        "poll_interval": rt.poll_interval,
        "windows": len(rt.windows),
        "profile_digest": rt.profile.digest,
    }


def cmd_supervisor_info(global_opts: dict[str, Any], argv: list[str]) -> int:
    """Which layer decides whether the Service Supervisor runs."""
    parser = _parser("supervisor-info", "Show which layer decides whether the Service Supervisor runs.")
    parser.add_argument("--json", action="store_true")
    ns = parser.parse_args(argv)
    from runtime.start import prepare

    rt = prepare(_options(global_opts, ns, log_stream=sys.stderr))
    _emit(supervisor_info(rt), ns.json)
    return 0


def cmd_health(global_opts: dict[str, Any], argv: list[str]) -> int:
    """Health, live (--probe) or from the running orchestrator's file."""
    parser = _parser("health", "Report health: live with --probe, else from the orchestrator's runtime_health.json.")
    parser.add_argument("--probe", action="store_true", help="activate the adapters in process and check them now")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--manifest", help="manifest artifact to check (must match the profile's pinned digest)")
    parser.add_argument("--health-path", help="runtime_health.json to read (default: under the cache dir)")
    ns = parser.parse_args(argv)
    opts = _options(global_opts, ns, log_stream=sys.stderr, manifest=ns.manifest, health_path=ns.health_path)
    from runtime import activate, health
    from runtime.start import build_runtime, prepare

    if ns.probe:
        rt = build_runtime(opts)
        try:
            rt.state_health = rt.state.probe()
            record = health.build_record(rt, source="probe", adapters_live=activate.probe_adapters(rt),
                                         secrets=activate.check_secrets(rt, live=True))
        finally:
            activate.close(rt)
    else:
        rt = prepare(opts)
        if not ns.health_path:  # where the last orchestrate of this cache dir said it writes
            rt.health_path = health.default_path(rt.cache_dir)
        try:
            record = health.read_file(rt.health_path)
        except FileNotFoundError:
            record = {"status": "unhealthy", "detail": f"no health file at {rt.health_path}: is orchestrate "
                                                       "running? (or use --probe)"}
        except (OSError, ValueError) as exc:
            record = {"status": "unhealthy", "detail": f"{rt.health_path}: unreadable health file ({exc})"}
        else:
            health.check_fresh(record, rt.poll_interval)
    if ns.json:
        health.print_json(record)
    else:
        lines = {"status": record.get("status")}
        if "profile" in record:
            lines["profile"] = record["profile"].get("name")
            lines["secrets"] = f"{record['secrets'].get('provider')} {record['secrets'].get('status')}"
            lines["activity_state"] = record["lifecycle_state"]["activity_state"]
            lines["supervisor"] = record["lifecycle_state"]["supervisor"]
            lines["adapters"] = {k: v.get("status") for k, v in record.get("adapters", {}).items()}
            lines["manifest_digest"] = record.get("manifest", {}).get("digest")
        if record.get("detail"):
            lines["detail"] = record["detail"]
        _emit(lines, False)
    return 0 if record.get("status") == "healthy" else 1


def cmd_activity(global_opts: dict[str, Any], argv: list[str]) -> int:
    """Show, pause, drain or resume work per (domain, key)."""
    parser = _parser("activity", "Show or set pause/drain state per (domain, key); '*' matches all.")
    parser.add_argument("action", nargs="?", choices=("pause", "drain", "resume"))
    parser.add_argument("--domain")
    parser.add_argument("--key")
    parser.add_argument("--note")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--health-path", help="runtime_health.json to read the orchestrator's view from")
    ns = parser.parse_args(argv)
    if ns.action and (not ns.domain or not ns.key):
        parser.error(f"activity {ns.action} needs --domain and --key ('*' for all)")
    if not ns.action and (ns.domain or ns.key or ns.note):
        parser.error("--domain/--key/--note go with pause, drain or resume")
    from runtime import health
    from runtime.start import prepare
    from runtime.supervisor import evaluate

    rt = prepare(_options(global_opts, ns, log_stream=sys.stderr, health_path=ns.health_path))
    if not ns.health_path:  # where the last orchestrate of this cache dir said it writes
        rt.health_path = health.default_path(rt.cache_dir)
    from runtime import activate

    try:
        if rt.state.remote:  # the shared activity rows: the DSN is a secret reference
            from runtime.activity import ActivityError
            from runtime.state import StateError

            activate.activate(rt, only=())
            try:
                rt.state.store()  # wait for the connection (bounded by connect_timeout_seconds)
            except StateError as exc:
                raise ActivityError(str(exc)) from None
        if ns.action:
            state = {"pause": "paused", "drain": "draining", "resume": "active"}[ns.action]
            who = rt.environ.get("USER") or rt.environ.get("LOGNAME") or f"uid{os.getuid()}"
            record = rt.activity.set(ns.domain, ns.key, state, note=ns.note, updated_by=f"cli:{who}")
            if not rt.supervisor_enabled:
                rt.log("WARNING", "the Service Supervisor is disabled for this profile: the change is recorded "
                                  "but not enforced until it is enabled")
            _emit({"action": ns.action, **record.as_dict(), "store": str(rt.activity.path)}, ns.json)
            return 0
        snapshot = evaluate(rt.activity, rt.windows)
        data: dict[str, Any] = {
            "activity_state": snapshot.global_state or "accepting",
            "supervisor_enabled": rt.supervisor_enabled,
            "entries": [r.as_dict() for r in snapshot.records],
            "windows": [r.as_dict() for r in snapshot.windows],
            "store": str(rt.activity.path),
        }
        try:
            live = health.read_file(rt.health_path)
            data["runtime_health"] = {"activity_state": live.get("activity_state"),
                                      "last_update": live.get("lifecycle_state", {}).get("supervisor", {}).get("last_update"),
                                      "pid": live.get("pid"), "path": str(rt.health_path)}
        except (OSError, ValueError):
            data["runtime_health"] = None
        if snapshot.error:
            data["error"] = snapshot.error
        _emit(data, ns.json)
        return 0
    finally:  # the store connection and any adapter activated above
        activate.close(rt)


def cmd_workflow(global_opts: dict[str, Any], argv: list[str]) -> int:
    """Enqueue, run, list and inspect workflow runs."""
    try:
        from runtime.workflows.cli import main as workflow_main
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("runtime.workflows"):
            sys.stderr.write("oneiric: error: the workflow command is not available in this build "
                             "(runtime.workflows is not installed)\n")
            return 1
        raise
    from runtime.start import RuntimeOptions

    opts = RuntimeOptions(config=global_opts["config"], profile=global_opts["profile"], demo=global_opts["demo"],
                          log_stream=sys.stderr)
    return int(workflow_main(argv, opts) or 0)


def cmd_state(global_opts: dict[str, Any], argv: list[str]) -> int:
    """Create, upgrade or inspect the state store (runs, leases, dead letters): migrate | status."""
    from runtime.start import RuntimeOptions
    from runtime.state.cli import main as state_main

    opts = RuntimeOptions(config=global_opts["config"], profile=global_opts["profile"], demo=global_opts["demo"],
                          log_stream=sys.stderr)
    return int(state_main(argv, opts) or 0)


COMMANDS = {
    "orchestrate": cmd_orchestrate,
    "health": cmd_health,
    "supervisor-info": cmd_supervisor_info,
    "activity": cmd_activity,
    "workflow": cmd_workflow,
    "state": cmd_state,
}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        global_opts, verb, rest = split_global(args)
    except UsageError as exc:
        sys.stderr.write(f"oneiric: error: {exc}\n")
        return 2
    command = COMMANDS.get(verb or "")
    if command is None:
        sys.stderr.write(f"oneiric: error: expected one of {', '.join(VERBS)}, got {verb!r}\n")
        return 2
    from runtime.activity import ActivityError
    from runtime.start import StartupError

    try:
        return command(global_opts, rest)
    except (StartupError, ActivityError) as exc:
        sys.stderr.write(f"oneiric: error: {exc}\n")
        return 1
    except BrokenPipeError:
        return 1
    except Exception as exc:  # a bug or an unusable file: one line for the operator, never a traceback
        sys.stderr.write(f"oneiric: error: {type(exc).__name__}: {exc}\n")
        return 1
