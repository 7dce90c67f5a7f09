"""The one entry point: routes runtime verbs to `runtime.cli`, everything else to `compiler.cli`.

Imports nothing but the chosen half (and the runtime's list of verbs, which costs no library), so a
runtime verb never loads click, jsonschema, jinja2 or any other compiler library. In a runtime-only
image (requirements.txt + this project with --no-deps) a compiler verb, or `--help`, answers with one
line saying what to install (exit 2) instead of a traceback.
"""

from __future__ import annotations

import sys

from runtime.cli import VERBS as RUNTIME_VERBS

#: Global options that take a value; they may come before the verb.
_VALUE_OPTIONS = frozenset({"--config", "--profile"})


def find_verb(argv: list[str]) -> str | None:
    """The first positional word, skipping global options and their values."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--":
            return None
        if arg in _VALUE_OPTIONS:
            skip = True
            continue
        if arg.startswith("-"):
            continue
        return arg
    return None


def compiler_missing(verb: str | None, exc: ModuleNotFoundError) -> str:
    """The one line a runtime-only install prints for a compiler verb (or for `--help`)."""
    what = f"`oneiric {verb}` is a compiler command" if verb else "the full command list needs the compiler"
    return (f"oneiric: error: {what}, and this install holds the runtime only (no module {exc.name!r}): "
            f"install the full package, `pip install oneiric` (`pip install -e .` in a source tree); "
            f"the runtime verbs work here: {', '.join(RUNTIME_VERBS)}\n")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    verb = find_verb(args)
    if verb in RUNTIME_VERBS:
        from runtime.cli import main as runtime_main

        return runtime_main(args)
    try:
        from compiler.cli import main as compiler_main
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.startswith("compiler.") or exc.name.split(".")[0] in ("runtime", "oneiric"):
            raise  # a module of our own is missing: a broken install, not a runtime-only image
        sys.stderr.write(compiler_missing(verb, exc))
        return 2
    return compiler_main(args)


if __name__ == "__main__":
    sys.exit(main())
