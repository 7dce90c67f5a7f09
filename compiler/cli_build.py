"""The build commands: `compile`, `manifest pack`, `manifest validate` and `explain`.

Each copies its options into calls of the stage functions (imported inside the command, so `--help`
loads none of them) and picks the exit code: 0 ok, 1 invalid input or stale artifacts, 2 usage.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from compiler.cli_context import chosen_profiles, display, emit_diagnostics, format_option, project_root


@click.command("compile")
@click.option("--profile", "profiles", multiple=True, help="profile to compile (repeatable; default: every settings file)")
@click.option("--project-dir", type=click.Path(file_okay=False, path_type=Path), help="project root (default: .)")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="output dir (default: PROJECT/build)")
@click.option("--check", is_flag=True, help="compare with the files on disk instead of writing; exit 1 when stale")
@click.option("--force", is_flag=True, help="build even when nothing changed since the last compile")
@format_option
@click.pass_context
def compile_cmd(ctx, profiles, project_dir, out_dir, check, force, fmt):
    """Compile settings + manifests into build/<profile>_manifest.json and build/<profile>_profile.json.

    Nothing is built when the inputs, the compiler, the factory modules and the artifacts are all as the
    last compile left them (compiler/incremental.py); --force builds anyway.
    """
    from compiler import incremental

    root = project_root(ctx, project_dir)
    if not root.is_dir():
        raise click.UsageError(f"project dir {root} does not exist")
    out = out_dir if out_dir is not None else root / "build"
    requested = chosen_profiles(ctx, profiles)
    unchanged = None if force else incremental.unchanged(root, out, requested)
    if unchanged is not None:
        if fmt != "text":
            emit_diagnostics([], fmt)
        elif check:
            click.echo(f"up to date: {', '.join(display(p) for p, _ in unchanged)} (unchanged since the last compile)")
        else:
            for path, digest in unchanged:
                click.echo(f"unchanged {display(path)} ({digest})")
        return

    from compiler.build import build_project
    from compiler.emit import EmitError, stale_files, write_all

    before = incremental.before_build(root)
    result = build_project(root, out, requested)
    if not result.ok:
        emit_diagnostics(result.diagnostics, fmt)
        ctx.exit(1)
    if check:
        stale = stale_files(result.files)
        if fmt != "text":
            emit_diagnostics([], fmt)
        for path in stale:
            click.echo(f"{display(path)} is stale: run oneiric compile", err=True)
        if stale:
            ctx.exit(1)
        incremental.record(root, out, requested, result, before)
        if fmt == "text":
            click.echo(f"up to date: {', '.join(display(p) for p in sorted(result.files))}")
        return
    try:
        write_all(result.files)
    except EmitError as exc:
        click.echo(f"error: {exc} (nothing was written; the previous artifacts are intact)", err=True)
        ctx.exit(1)
    incremental.record(root, out, requested, result, before)
    if fmt != "text":
        emit_diagnostics([], fmt)
        return
    for path in sorted(result.files):
        click.echo(f"wrote {display(path)} ({result.digests[path]})")


@click.command("pack")
@click.option("--input", "inputs", multiple=True, required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="manifest YAML (repeatable)")
@click.option("--output", required=True, type=click.Path(dir_okay=False, path_type=Path), help="artifact to write")
@format_option
@click.pass_context
def pack_cmd(ctx, inputs, output, fmt):
    """Pack manifests into one canonical manifest artifact (the guide's section 7 command)."""
    from compiler.build import check_manifests
    from compiler.emit import EmitError, render, write_all
    from compiler.project import load_file
    from compiler.resolve import build_manifest, load_entries

    root = project_root(ctx, None)
    docs, errors = [], []
    for path in inputs:
        doc = load_file(path, root)
        (errors.extend(doc) if isinstance(doc, list) else docs.append(doc))
    if not errors:
        errors = check_manifests(root, docs, chosen_profiles(ctx, ()))
    if not errors:
        entries, errors = load_entries(docs)
    if errors:
        emit_diagnostics(sorted(errors, key=lambda d: d.sort_key()), fmt)
        ctx.exit(1)
    try:
        write_all({output: render(build_manifest(docs, entries))})
    except EmitError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(1)
    if fmt == "text":
        click.echo(f"wrote {display(output)} ({len(entries)} entries)")
    else:
        emit_diagnostics([], fmt)


@click.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@format_option
@click.pass_context
def validate_cmd(ctx, paths, fmt):
    """Validate manifests (*.yaml) and settings (*.toml): schemas, and for manifests every check compile runs (with
    the project's settings, or the built-in defaults); every error at once."""
    from compiler.validate import validate_paths

    diagnostics = validate_paths(list(paths), project_root(ctx, None), chosen_profiles(ctx, ()))
    emit_diagnostics(diagnostics, fmt)
    if diagnostics:
        ctx.exit(1)
    if fmt == "text":
        click.echo(f"ok: {len(paths)} file(s) valid")


@click.command("explain")
@click.argument("key")
@click.option("--profile", "profile_opt", help="profile (default: the global --profile, else default)")
@click.option("--project-dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print the chain as JSON")
@click.pass_context
def explain_cmd(ctx, key, profile_opt, project_dir, as_json):
    """Show every layer that sets KEY (dotted path or ONEIRIC_ env name), the winner last."""
    from compiler.diagnostics import CompileError, Diagnostic
    from compiler.emit import digest_of
    from compiler.explain import explain
    from compiler.project import load_project, settings_for
    from compiler.resolve import resolve

    root = project_root(ctx, project_dir)
    name = profile_opt or ctx.obj.get("profile") or os.environ.get("ONEIRIC_PROFILE") or "default"
    project = load_project(root)
    settings = settings_for(project, name)
    if project.errors or isinstance(settings, Diagnostic):
        emit_diagnostics(project.errors or [settings], "text")
        ctx.exit(1)
    try:
        resolved = resolve(name, settings, project.manifests, f"{name}_manifest.json", digest_of)
    except CompileError as exc:
        emit_diagnostics(exc.diagnostics, "text")
        ctx.exit(1)
    layers = explain(key, resolved.profile, settings)
    if not layers:
        from compiler.diagnostics import suggest

        near = suggest(key, list(resolved.profile.provenance))
        click.echo(f"error: unknown key {key!r}" + (f" (did you mean {near!r}?)" if near else ""), err=True)
        ctx.exit(1)
    if as_json:
        click.echo(json.dumps([{"layer": l.name, "value": l.value, "origin": l.origin} for l in layers], indent=2))
        return
    click.echo(f"{key} (profile {name}), lowest first; the last line wins:")
    for layer in layers:
        click.echo(f"  {layer.name:<16} {json.dumps(layer.value)}  [{layer.origin}]")
