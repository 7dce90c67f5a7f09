"""The compiler's command line: the `oneiric` group, its global options, and every command registered here.

The commands live in `cli_build` (compile, pack, validate, explain), `cli_audit` (diff, verify, schema,
procfile, report) and `cli_project` (init, deploy render); registering them here, in one place, keeps
them free of this module.
Exit codes: 0 ok, 1 invalid input / check failed / artifacts differ, 2 usage error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from compiler import cli_audit, cli_build, cli_project


class _Oneiric(click.Group):
    """The group whose `--help` lists the runtime's verbs too (they are routed by oneiric/cli.py, not click)."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_commands(ctx, formatter)
        from runtime.cli import COMMANDS, VERBS

        rows = [(verb, (COMMANDS[verb].__doc__ or "").strip().split("\n")[0] if verb in COMMANDS else "")
                for verb in VERBS]
        with formatter.section("Runtime commands (`oneiric VERB --help`)"):
            formatter.write_dl(rows)


@click.group(cls=_Oneiric, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", type=click.Path(dir_okay=False, path_type=Path), envvar="ONEIRIC_CONFIG",
              help="settings file (its project dir is used) [env ONEIRIC_CONFIG]")
@click.option("--profile", "profile", help="profile name [env ONEIRIC_PROFILE]")
@click.option("--demo", is_flag=True, help="use the bundled example project (embedded defaults, no files needed)")
@click.version_option(package_name="oneiric")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, profile: str | None, demo: bool) -> None:
    """Oneiric: compile declarative config into frozen artifacts, then serve them on Cloud Run."""
    ctx.obj = {"config": config, "profile": profile, "demo": demo}


@click.group("manifest")
def manifest_group():
    """Pack, validate, diff and verify manifests and artifacts."""


for _command in (cli_build.pack_cmd, cli_build.validate_cmd, cli_audit.diff_cmd, cli_audit.verify_cmd):
    manifest_group.add_command(_command)
for _command in (cli_build.compile_cmd, manifest_group, cli_audit.procfile_cmd, cli_audit.report_cmd,
                 cli_audit.schema_cmd, cli_build.explain_cmd, cli_project.init_cmd, cli_project.deploy_group):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="oneiric", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
