"""The one entry point: routes runtime verbs to `runtime.cli`, everything else to `compiler.cli`.

Imports nothing but the chosen half (and the runtime's list of verbs, which costs no library), so a
runtime verb never loads click, jsonschema, jinja2 or any other compiler library.
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


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if find_verb(args) in RUNTIME_VERBS:
        from runtime.cli import main as runtime_main

        return runtime_main(args)
    from compiler.cli import main as compiler_main

    return compiler_main(args)


if __name__ == "__main__":
    sys.exit(main())
