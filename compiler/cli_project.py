"""The commands that start and ship a project: `init` and `deploy render`.

Each copies its options into calls of a stage module (init, deploy) imported inside the command, so
`oneiric --help` loads neither. Exit codes: 0 ok, 1 refused (files exist, profile not compiled), 2 usage.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from compiler.cli_context import display, fail_usage, project_root

#: How long recording the new project's review snapshots may take.
SNAPSHOT_TIMEOUT = 180


@click.command("init")
@click.argument("directory", required=False, default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--package", help="the Python package for your tasks and adapters (default: from DIRECTORY's name)")
@click.option("--service", help="the Cloud Run service name (default: the package name with hyphens)")
@click.option("--project-id", default="my-gcp-project", show_default=True, help="your Google Cloud project id")
@click.option("--region", default="us-central1", show_default=True, help="the Cloud Run and Cloud Tasks region")
@click.option("--no-snapshots", is_flag=True, help="do not record the review test's snapshots (pytest --snapshot-update)")
@click.pass_context
def init_cmd(ctx, directory, package, service, project_id, region, no_snapshots):
    """Make a new project in DIRECTORY (default: here) that compiles, serves and tests with no edits.

    Writes config/{default,serverless}.toml, a manifest with one adapter, two tasks and a two-node
    workflow in your own package, Procfile + Procfile.cloudrun, requirements.txt, .gitignore, a
    config-review test with its syrupy snapshots, and .env holding a random local HMAC key (git-ignored).
    Never overwrites a file: exit 1 naming the ones that exist.
    """
    from compiler import init

    options = init.InitOptions(directory, package, service, project_id, region)
    try:
        files = init.plan(options)
    except init.InitError as exc:
        fail_usage(ctx, str(exc))
        return
    existing = init.conflicts(files)
    if existing:
        click.echo(f"error: {len(existing)} file(s) already exist, nothing was written (init never overwrites): "
                   + ", ".join(display(p) for p in existing), err=True)
        ctx.exit(1)
    try:
        init.write(files)
    except OSError as exc:
        click.echo(f"error: cannot write {exc.filename}: {exc.strerror or exc}", err=True)
        ctx.exit(1)
    for path in sorted(files):
        click.echo(f"created {display(path)}")
    if not no_snapshots and not _record_snapshots(directory):
        ctx.exit(1)
    where = "" if directory.resolve() == Path.cwd().resolve() else f"cd {display(directory)} && "
    click.echo("\nnext:\n"
               f"  {where}oneiric compile\n"
               "  oneiric orchestrate                    # serves :8080; the local queue delivers to it\n"
               "  oneiric workflow enqueue ingest        # in another shell; then: oneiric workflow status RUN_ID\n"
               "  python -m pytest                       # the config review\n"
               "  oneiric deploy render --image IMAGE    # the Cloud Run service and queue (edit [deploy] first)")


def _record_snapshots(directory: Path) -> bool:
    """Run the generated review test once with --snapshot-update, so it passes as generated."""
    import importlib.util

    if importlib.util.find_spec("syrupy") is None or importlib.util.find_spec("pytest") is None:
        click.echo("note: pytest and syrupy are not installed here: run `python -m pytest --snapshot-update` once "
                   "to record the review snapshots", err=True)
        return True
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--snapshot-update",
                           "tests/test_config_review.py"], cwd=directory, capture_output=True, text=True,
                          timeout=SNAPSHOT_TIMEOUT)
    if done.returncode != 0:
        click.echo("error: recording the review snapshots failed (python -m pytest --snapshot-update):\n"
                   + (done.stdout + done.stderr)[-3000:], err=True)
        return False
    click.echo(f"recorded {display(directory / 'tests' / '__snapshots__' / 'test_config_review.ambr')}")
    return True


@click.group("deploy")
def deploy_group():
    """Render what Cloud Run needs from a compiled profile."""


@deploy_group.command("render")
@click.option("--profile", "profile_opt", help="profile (default: the global --profile, else serverless)")
@click.option("--image", help="container image (default: [deploy] image)")
@click.option("--service", help="Cloud Run service name (default: [deploy] service)")
@click.option("--region", help="region (default: [deploy] region)")
@click.option("--project-dir", type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def render_cmd(ctx, profile_opt, image, service, region, project_dir):
    """Write build/<profile>_cloudrun.yaml (a Cloud Run service for `gcloud run services replace`) and
    build/<profile>_queue.yaml (the Cloud Tasks queue), then print the gcloud commands that apply them.

    Every secret the profile references is mounted by Cloud Run from Secret Manager, so the runtime reads
    it with no Google SDK at start. `oneiric compile` re-renders both files with the options given here.
    """
    from compiler import deploy
    from compiler.emit import EmitError, write_all
    from compiler.procfile import ProcfileError, load_profile

    root = project_root(ctx, project_dir)
    name = profile_opt or ctx.obj.get("profile") or "serverless"
    try:
        rel, profile = load_profile(root, name)
        rendered = deploy.render(profile, rel, {"image": image, "service": service, "region": region})
        write_all({root / "build" / file: text.encode("utf-8") for file, text in rendered.files.items()})
    except (ProcfileError, deploy.DeployError, EmitError) as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(1)
    for file in sorted(rendered.files):
        click.echo(f"wrote {display(root / 'build' / file)}")
    click.echo("\napply with:")
    for command in rendered.commands:
        click.echo(f"  {command}")
