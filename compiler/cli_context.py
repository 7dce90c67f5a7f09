"""What every compiler command shares: the global options' project dir and profiles, how paths and
diagnostics are printed, and the exit for a usage error."""

from __future__ import annotations

from pathlib import Path

import click

from compiler.report import REPORTERS
from runtime.about import DEMO_DIR
from runtime.locate import project_dir_of_config


def display(path: Path) -> str:
    """`path` relative to the working directory when it is below it, else as given."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def emit_diagnostics(diagnostics, fmt: str) -> None:
    text = REPORTERS[fmt](diagnostics)
    if fmt == "text":
        if text:
            click.echo(text, err=True)
            click.echo(f"{len(diagnostics)} error(s)", err=True)
    else:
        click.echo(text)


format_option = click.option("--format", "fmt", type=click.Choice(sorted(REPORTERS)), default="text",
                             show_default=True, help="how to print errors")


def project_root(ctx: click.Context, explicit: Path | None) -> Path:
    """--project-dir, else the demo project (--demo), else the project of --config, else the working dir."""
    if explicit is not None:
        return explicit
    if ctx.obj.get("demo"):
        return DEMO_DIR
    config = ctx.obj.get("config")
    if config is not None:
        return project_dir_of_config(config.resolve())
    return Path(".")


def chosen_profiles(ctx: click.Context, given: tuple[str, ...]) -> list[str] | None:
    """The --profile options of the command, else the global --profile, else None (every profile)."""
    if given:
        return list(given)
    if ctx.obj.get("profile"):
        return [ctx.obj["profile"]]
    return None


def fail_usage(ctx: click.Context, message: str) -> None:
    click.echo(f"error: {message}", err=True)
    ctx.exit(2)
