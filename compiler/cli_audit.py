"""The audit and CI commands: `manifest diff`, `manifest verify`, `schema`, `procfile` and `report`.

Each command copies its options into calls of a stage module (diff, verify,
release, procfile) imported inside the command, so `oneiric --help` loads none
of them. Exit codes: 0 ok / same, 1 differ / check failed, 2 usage error.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from compiler.cli_context import display, fail_usage, project_root
from runtime.about import SCHEMA_DIR


@click.command("diff")
@click.argument("old")
@click.argument("new")
@click.option("--json", "as_json", is_flag=True, help="print the changes as JSON (for tools)")
@click.pass_context
def diff_cmd(ctx, old, new, as_json):
    """Semantic diff of two artifacts of the same kind; OLD and NEW are files or REV:PATH (read via git).

    REV:PATH is read with `git show`, so PATH is from the repository root
    (HEAD~1:build/serverless_profile.json) or, starting with ./, from the current directory.

    Entries and selections are matched by domain/key/provider, order is ignored; a changed
    setting shows the file and line that set it on each side. Exit 0 same, 1 differ, 2 usage.
    """
    from compiler import diff

    try:
        result = diff.diff_artifacts(*diff.load_pair(old, new))
    except diff.DiffInputError as exc:
        fail_usage(ctx, str(exc))
        return
    click.echo(diff.report_json(result) if as_json else diff.report_text(result))
    ctx.exit(0 if result.same else 1)


@click.command("verify")
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print the results as JSON")
@click.pass_context
def verify_cmd(ctx, paths, as_json):
    """Recompute digests, check the profile's manifest link and the inputs on disk; exit 1 naming what differs.

    Inputs are looked up under the project dir, the parent of the artifact's directory.
    """
    from compiler import verify

    results = [verify.verify_artifact(path, path.as_posix()) for path in paths]
    text = verify.report_json(results) if as_json else verify.report_text(results)
    ok = all(r.ok for r in results)
    click.echo(text)
    ctx.exit(0 if ok else 1)


@click.command("schema")
@click.argument("name", required=False)
@click.option("--output", "output", type=click.Path(file_okay=False, path_type=Path),
              help="write the schemas into this directory (providers/ included)")
@click.pass_context
def schema_cmd(ctx, name, output):
    """List the JSON Schemas, print one (NAME, e.g. settings), or export them all with --output DIR."""
    files = sorted(p.relative_to(SCHEMA_DIR).as_posix() for p in SCHEMA_DIR.rglob("*.json"))
    names = {f.removesuffix(".json").removesuffix(".schema"): f for f in files}
    if name is not None:
        if name not in names and name not in files:
            fail_usage(ctx, f"unknown schema {name!r} (one of: {', '.join(sorted(names))})")
            return
        files = [names.get(name, name)]
    if output is None:
        if name is not None:
            click.echo((SCHEMA_DIR / files[0]).read_text(encoding="utf-8"), nl=False)
        else:
            for key in sorted(names):
                click.echo(f"{key:<28} {names[key]}")
        return
    from compiler.emit import EmitError, write_all

    try:
        write_all({output / f: (SCHEMA_DIR / f).read_bytes() for f in files})
    except EmitError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(1)
    for f in files:
        click.echo(f"wrote {display(output / f)}")


@click.command("procfile")
@click.option("--check", is_flag=True, help="compare with the files on disk instead of writing; exit 1 on drift")
@click.option("--profile", "profile_opt", default=None,
              help="profile the web process serves (default: the global --profile, else serverless)")
@click.option("--project-dir", type=click.Path(file_okay=False, path_type=Path), help="project root (default: .)")
@click.option("--template", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="your own jinja2 template (default: compiler/templates/Procfile.j2)")
@click.pass_context
def procfile_cmd(ctx, check, profile_opt, project_dir, template):
    """Render Procfile and Procfile.cloudrun from one template and the compiled profile artifact."""
    from compiler import procfile

    root = project_root(ctx, project_dir)
    name = profile_opt or ctx.obj.get("profile") or procfile.DEFAULT_PROFILE
    try:
        files = procfile.render_procfiles(root, name, template)
    except procfile.ProcfileError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(1)
        return
    if check:
        from compiler.emit import stale_files

        drifted = stale_files(dict(sorted(files.items())))
        for path in drifted:
            click.echo(f"{display(path)} has drifted from the template and {name}_profile.json: "
                       "run oneiric procfile", err=True)
        if drifted:
            ctx.exit(1)
        click.echo(f"up to date: {', '.join(display(p) for p in sorted(files))}")
        return
    from compiler.emit import EmitError, write_all

    try:
        write_all(files)
    except EmitError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(1)
    for path in sorted(files):
        click.echo(f"wrote {display(path)}")


@click.command("report")
@click.option("--profile", "profiles", multiple=True,
              help="profile to report (repeatable; default: the global --profile, else every profile in build/)")
@click.option("--project-dir", type=click.Path(file_okay=False, path_type=Path), help="project root (default: .)")
@click.option("--build-dir", type=click.Path(file_okay=False, path_type=Path),
              help="compiled artifacts (default: PROJECT/build)")
@click.option("--against", help="the previous build: a git revision, a directory of artifacts or a profile artifact")
@click.option("--probe", is_flag=True,
              help="run `oneiric health --probe --json` for each profile and include its secrets and status")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="write the notes here (default: stdout)")
@click.option("--template", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="your own jinja2 template (default: compiler/templates/release.md.j2)")
@click.pass_context
def report_cmd(ctx, profiles, project_dir, build_dir, against, probe, output, template):
    """Markdown release notes for the compiled build: toggles, supervisor, secrets, adapters, digests, diff.

    Replaces the supervisor-info / health screenshots the deployment guide asks for.
    Deterministic: the only time shown is SOURCE_DATE_EPOCH, when set.
    """
    from compiler import release

    root = project_root(ctx, project_dir)
    build = build_dir if build_dir is not None else root / "build"
    names = list(profiles) or ([ctx.obj["profile"]] if ctx.obj.get("profile") else None)
    try:
        notes = release.build_notes(root, build, names, against=against, probe=probe, demo=bool(ctx.obj.get("demo")),
                                    environ=dict(os.environ))
        text = release.render(notes, template)
    except release.ReportError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(1)
        return
    if output is not None:
        from compiler.emit import EmitError, write_all

        try:
            write_all({output: text.encode("utf-8")})
        except EmitError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        click.echo(f"wrote {display(output)}")
    else:
        click.echo(text, nl=False)
    if not notes.verified:
        click.echo("error: some artifacts failed verification (see the Verification section)", err=True)
        ctx.exit(1)
