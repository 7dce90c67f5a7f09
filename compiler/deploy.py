"""Deploy stage: a compiled profile -> the Cloud Run service and the Cloud Tasks queue that run it.

`render(...)` turns the profile artifact's `[deploy]` settings (checked by `check_deploy` at compile
time) into two files under build/:

- `<profile>_cloudrun.yaml`: a Knative `serving.knative.dev/v1` Service, as `gcloud run services replace`
  takes it: ONEIRIC_PROFILE, every `secret://NAME[@VERSION]` the profile references mounted by Cloud Run
  from Secret Manager (a `secretKeyRef` variable, or a secret volume with `secrets = "volume"`; the pinned
  version where pinned) with `ONEIRIC_SECRETS__DELIVERY=mounted`, so the runtime reads them without the
  Google SDK (runtime/adapters/secrets_mounted.py); a startup probe on /healthz; concurrency, timeout (at
  least the queue's dispatch deadline), min/max instances, startup CPU boost and the service account;
- `<profile>_queue.yaml`: the Cloud Tasks queue (the REST `Queue` resource: rate limits and retry config)
  whose `maxRetryDuration` is the cloudtasks provider's `max_retry_duration_seconds`, the setting the
  compiler already checks against the HMAC window.

Both are deterministic and hold no secret value. A header line records the profile artifact's digest and
the options `oneiric deploy render` was given (`--image`, ...), so `oneiric compile` re-renders them the
same way and `compile --check` finds them stale when the settings change.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from compiler.checks import resolve_category
from compiler.diagnostics import Diagnostic, Document
from runtime.canonical import DIGEST_PREFIX, sha256_file_bytes
from runtime.model import ProfileArtifact, Selection
from runtime.overrides import get_path

FORMAT = "oneiric.deploy/1"
#: What an unset [deploy] key means (the schema leaves them without defaults so profiles without a
#: [deploy] table compile to the same settings as before).
DEFAULTS: dict[str, Any] = {
    "image": "IMAGE", "port": 8080, "concurrency": 80, "min_instances": 0, "max_instances": 5, "cpu": "1",
    "memory": "512Mi", "startup_cpu_boost": True, "secrets": "env", "allow_unauthenticated": False,
    "startup_probe_failures": 30, "service_account": None,
}
QUEUE_DEFAULTS: dict[str, Any] = {
    "max_dispatches_per_second": 10, "max_concurrent_dispatches": 100, "max_attempts": 10,
    "min_backoff_seconds": 1, "max_backoff_seconds": 300, "max_doublings": 5,
}
#: The shortest request timeout rendered when the queue's deadline is shorter (Cloud Run's own default).
MIN_TIMEOUT = 300
#: Options `oneiric deploy render` accepts on the command line, recorded in the files it writes.
OPTIONS = ("image", "service", "region")
_HEADER = re.compile(r"^# " + re.escape(FORMAT) + r" (?P<json>\{.*\})$", re.M)
_SOURCE = re.compile(r"^# Rendered by `oneiric deploy render` from (?P<profile>\S+) \((?P<digest>sha256:[0-9a-f]{64})\)")


class DeployError(Exception):
    """The profile cannot be rendered (no [deploy] table, no service); the message says what to set."""


@dataclass(frozen=True)
class Rendered:
    files: dict[str, str]  # file name under build/ -> text
    commands: list[str] = field(default_factory=list)


def deploy_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    raw = settings.get("deploy")
    return dict(raw) if isinstance(raw, Mapping) else {}


def queue_selection(selections: Iterable[Selection], category: str) -> tuple[str | None, dict[str, Any]]:
    """(provider, settings) of the adapter that delivers workflows: the adapter key equal to the queue
    category, else its longest dotted prefix (as the runtime resolves it)."""
    adapters = {s.key: s for s in selections if s.domain == "adapter"}
    key = resolve_category(category or "queue", adapters)
    if key is None:
        return None, {}
    return adapters[key].provider, dict(adapters[key].settings)


def dispatch_deadline(selections: Iterable[Selection], category: str) -> float | None:
    """Seconds the queue waits for one delivery's answer (the service's timeout must cover it)."""
    _, settings = queue_selection(selections, category)
    value = settings.get("dispatch_deadline_seconds")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _category(profile: ProfileArtifact) -> str:
    return str(get_path(profile.settings, "workflows.options.queue_category", "queue") or "queue")


# ---------------------------------------------------------------- compile-time checks

def check_deploy(layers: Any, doc: Document | None, deadline: float | None) -> list[Diagnostic]:
    """Cross-field rules of `[deploy]` the schema cannot state (each error at its file:line:col)."""
    if doc is None or not isinstance(doc.data, dict) or not isinstance(doc.data.get("deploy"), dict):
        return []
    get = lambda *p: layers.get(("deploy",) + p)  # noqa: E731
    out: list[Diagnostic] = []

    def error(pointer: str, message: str, hint: str | None = None) -> None:
        out.append(Diagnostic("deploy.invalid", message, doc.span(pointer), pointer, hint))

    if not get("service"):
        error("/deploy", "[deploy] needs service (the Cloud Run service name)")
    if not get("region"):
        error("/deploy", "[deploy] needs region (e.g. us-central1)")
    low = get("min_instances") if get("min_instances") is not None else DEFAULTS["min_instances"]
    high = get("max_instances") if get("max_instances") is not None else DEFAULTS["max_instances"]
    if low > high:
        error("/deploy/min_instances", f"min_instances = {low} is more than max_instances = {high}")
    timeout = get("timeout_seconds")
    if timeout is not None and deadline is not None and timeout < deadline:
        error("/deploy/timeout_seconds", f"timeout_seconds = {timeout} is shorter than the queue's dispatch "
              f"deadline ({deadline:g} s): Cloud Run would cut off deliveries Cloud Tasks still waits for",
              f"raise it to at least {deadline:g} or lower dispatch_deadline_seconds")
    qlow = get("queue", "min_backoff_seconds")
    qhigh = get("queue", "max_backoff_seconds")
    if qlow is not None and qhigh is not None and qlow > qhigh:
        error("/deploy/queue/min_backoff_seconds", f"min_backoff_seconds = {qlow} is more than "
              f"max_backoff_seconds = {qhigh}")
    return out


# ---------------------------------------------------------------- rendering

def _duration(seconds: float) -> str:
    return f"{seconds:g}s"


def _volume_name(secret: str) -> str:
    """A Kubernetes volume name (DNS label) for a secret name, which may hold `_` and capitals."""
    import hashlib

    clean = re.sub(r"[^a-z0-9-]+", "-", secret.lower()).strip("-")[:40] or "secret"
    return f"secret-{clean}-{hashlib.sha256(secret.encode()).hexdigest()[:6]}"


def _secret_mounts(profile: ProfileArtifact, how: str, mount_dir: str) -> tuple[list, list, list]:
    """(env entries, volumes, volume mounts) for every secret reference of the profile."""
    from runtime.adapters.secrets_mounted import env_name

    env: list[dict[str, Any]] = []
    volumes: dict[str, dict[str, Any]] = {}
    for ref in sorted(profile.secrets, key=lambda s: (s.name, s.ref)):
        pinned = ref.version if "@" in ref.ref else None
        version = pinned or "latest"
        if how == "env":
            env.append({"name": env_name(ref.name, pinned),
                        "valueFrom": {"secretKeyRef": {"name": ref.name, "key": version}}})
        else:
            volume = volumes.setdefault(ref.name, {"name": _volume_name(ref.name),
                                                   "secret": {"secretName": ref.name, "items": []}})
            item = {"key": version, "path": version}
            if item not in volume["secret"]["items"]:
                volume["secret"]["items"].append(item)
    names = sorted(volumes)
    mounts = [{"name": volumes[n]["name"], "mountPath": f"{mount_dir.rstrip('/')}/{n}", "readOnly": True}
              for n in names]
    return env, [volumes[n] for n in names], mounts


def _env_collisions(env: list[dict[str, Any]]) -> None:
    seen: dict[str, str] = {}
    for item in env:
        ref = item["valueFrom"]["secretKeyRef"]
        source = f"{ref['name']}@{ref['key']}"
        if item["name"] in seen and seen[item["name"]] != source:
            raise DeployError(f"secrets {seen[item['name']]} and {source} both arrive as ${item['name']}: rename "
                              "one, or use [deploy] secrets = \"volume\"")
        seen[item["name"]] = source


def render(profile: ProfileArtifact, profile_file: str, options: Mapping[str, str] | None = None) -> Rendered:
    """The service and queue files for `profile` (build/<name>_profile.json as `profile_file`)."""
    options = {k: v for k, v in (options or {}).items() if v}
    deploy = {**DEFAULTS, **deploy_settings(profile.settings), **options}
    name = profile.profile.name
    if not deploy_settings(profile.settings):
        raise DeployError(f"profile {name!r} has no [deploy] table: add one to config/{name}.toml (service, "
                          "region, ...) and run oneiric compile")
    service, region = deploy.get("service"), deploy.get("region")
    if not service or not region:
        raise DeployError(f"profile {name!r}: [deploy] needs service and region (or --service/--region)")
    provider, queue_settings = queue_selection(profile.selections, _category(profile))
    deadline = dispatch_deadline(profile.selections, _category(profile))
    timeout = deploy.get("timeout_seconds") or max(MIN_TIMEOUT, int(-(-(deadline or 0) // 1)))
    secrets_provider = str(get_path(profile.settings, "secrets.provider", "env"))
    how = deploy["secrets"]
    mounted = how in ("env", "volume") and secrets_provider == "gcp.secret_manager"
    mount_dir = str(get_path(profile.settings, "secrets.mount_dir", "/secrets") or "/secrets")

    env: list[dict[str, Any]] = [{"name": "ONEIRIC_PROFILE", "value": name}]
    volumes: list = []
    mounts: list = []
    if mounted:
        env.append({"name": "ONEIRIC_SECRETS__DELIVERY", "value": "mounted"})
        secret_env, volumes, mounts = _secret_mounts(profile, how, mount_dir)
        _env_collisions(secret_env)
        env.extend(secret_env)
    container: dict[str, Any] = {
        "image": deploy["image"],
        "ports": [{"name": "http1", "containerPort": deploy["port"]}],
        "env": env,
        "resources": {"limits": {"cpu": str(deploy["cpu"]), "memory": deploy["memory"]}},
        "startupProbe": {"httpGet": {"path": "/healthz", "port": deploy["port"]}, "initialDelaySeconds": 0,
                         "periodSeconds": 1, "timeoutSeconds": 1,
                         "failureThreshold": deploy["startup_probe_failures"]},
    }
    if mounts:
        container["volumeMounts"] = mounts
    template_spec: dict[str, Any] = {"containerConcurrency": deploy["concurrency"], "timeoutSeconds": timeout}
    if deploy.get("service_account"):
        template_spec["serviceAccountName"] = deploy["service_account"]
    template_spec["containers"] = [container]
    if volumes:
        template_spec["volumes"] = volumes
    service_doc = {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": service, "labels": {"cloud.googleapis.com/location": region}},
        "spec": {"template": {
            "metadata": {"annotations": {
                "autoscaling.knative.dev/minScale": str(deploy["min_instances"]),
                "autoscaling.knative.dev/maxScale": str(deploy["max_instances"]),
                "run.googleapis.com/startup-cpu-boost": "true" if deploy["startup_cpu_boost"] else "false",
            }},
            "spec": template_spec,
        }},
    }
    files = {f"{name}_cloudrun.yaml": service_doc}
    project = get_path(profile.settings, "secrets.project_id") or queue_settings.get("project_id")
    where = f" --region {region}" + (f" --project {project}" if project else "")
    commands = [f"gcloud run services replace build/{name}_cloudrun.yaml{where}"]
    if deploy["allow_unauthenticated"]:
        commands.append(f"gcloud run services add-iam-policy-binding {service}{where} "
                        "--member=allUsers --role=roles/run.invoker")
    if provider == "cloudtasks":
        queue_doc, queue_commands = _queue(profile, queue_settings, deploy, service, region)
        files[f"{name}_queue.yaml"] = queue_doc
        commands.extend(queue_commands)
    if mounted and deploy.get("service_account"):
        for secret in sorted({s.name for s in profile.secrets}):
            commands.append(f"gcloud secrets add-iam-policy-binding {secret}"
                            + (f" --project {project}" if project else "") + " --member=serviceAccount:"
                            f"{deploy['service_account']} --role=roles/secretmanager.secretAccessor")
    recorded = {k: options[k] for k in OPTIONS if k in options}
    header = (f"# Rendered by `oneiric deploy render` from {profile_file} ({profile.digest}): do not edit; change\n"
              f"# [deploy] in config/{name}.toml, then run oneiric compile (or deploy render) again.\n"
              f"# {FORMAT} {json.dumps(recorded, sort_keys=True)}\n")
    return Rendered({file: header + _yaml(doc) for file, doc in files.items()}, commands)


def _queue(profile: ProfileArtifact, settings: dict[str, Any], deploy: dict[str, Any], service: str,
           region: str) -> tuple[dict[str, Any], list[str]]:
    queue = {**QUEUE_DEFAULTS, **(deploy.get("queue") or {})}
    project, location, name = settings.get("project_id"), settings.get("location"), settings.get("queue")
    retry_duration = settings.get("max_retry_duration_seconds") or 0  # checked against the HMAC window at compile
    retry = {"maxAttempts": queue["max_attempts"], "minBackoff": _duration(queue["min_backoff_seconds"]),
             "maxBackoff": _duration(queue["max_backoff_seconds"]), "maxDoublings": queue["max_doublings"],
             "maxRetryDuration": _duration(retry_duration)}
    doc = {"name": f"projects/{project}/locations/{location}/queues/{name}",
           "rateLimits": {"maxDispatchesPerSecond": queue["max_dispatches_per_second"],
                          "maxConcurrentDispatches": queue["max_concurrent_dispatches"]},
           "retryConfig": retry}
    flags = (f"--location {location} --project {project} --max-dispatches-per-second="
             f"{queue['max_dispatches_per_second']} --max-concurrent-dispatches={queue['max_concurrent_dispatches']} "
             f"--max-attempts={queue['max_attempts']} --min-backoff={retry['minBackoff']} "
             f"--max-backoff={retry['maxBackoff']} --max-doublings={queue['max_doublings']} "
             f"--max-retry-duration={retry['maxRetryDuration']}")
    commands = [f"gcloud tasks queues create {name} {flags}   # `update` instead of `create` once it exists"]
    invoker = get_path(profile.settings, "http.oidc_service_account")
    if get_path(profile.settings, "http.tasks_auth") == "oidc" and invoker:
        commands.append(f"gcloud run services add-iam-policy-binding {service} --region {region} --project {project} "
                        f"--member=serviceAccount:{invoker} --role=roles/run.invoker")
    return doc, commands


def _yaml(doc: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True, width=4096)


def recorded_options(text: str) -> dict[str, str]:
    """The options a previously written file was rendered with (its header line), else {}."""
    match = _HEADER.search(text)
    if not match:
        return {}
    try:
        data = json.loads(match["json"])
    except ValueError:
        return {}
    return {k: str(v) for k, v in data.items() if k in OPTIONS and isinstance(v, str)} if isinstance(data, dict) else {}


def files_for_build(profile: ProfileArtifact, out_dir: Path, profile_file: str) -> dict[Path, bytes]:
    """What `oneiric compile` writes for a profile with a [deploy] table: the files rendered with the
    options recorded in the current `<profile>_cloudrun.yaml` (none when it does not exist yet)."""
    if not deploy_settings(profile.settings):
        return {}
    try:
        previous = (out_dir / f"{profile.profile.name}_cloudrun.yaml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        previous = ""
    rendered = render(profile, profile_file, recorded_options(previous))
    return {out_dir / name: text.encode("utf-8") for name, text in rendered.files.items()}


def verify_rendered(path: Path) -> tuple[str, list[str], list[str]]:
    """(digest of the file, what matched, what differs) for a rendered service or queue file: the profile
    artifact it names still has the digest it names, and rendering that profile again (with the recorded
    options) gives the same bytes. For `oneiric manifest verify`."""
    from runtime import artifact
    from runtime.artifact import ArtifactError

    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return "", [], [f"cannot read: {getattr(exc, 'strerror', None) or exc}"]
    digest = DIGEST_PREFIX + sha256_file_bytes(raw)
    source = _SOURCE.match(text)
    if source is None:
        return digest, [], ["not a file `oneiric deploy render` wrote (no header naming its profile artifact)"]
    profile_path = path.parent / Path(source["profile"]).name
    try:
        profile = artifact.decode_profile(artifact.parse(artifact.read_bytes(profile_path, profile_path.name),
                                                         profile_path.name), profile_path.name)
    except ArtifactError as exc:
        return digest, [], [f"profile artifact {profile_path.name}: {exc}: run oneiric compile"]
    if profile.digest != source["digest"]:
        return digest, [], [f"rendered from {source['profile']} at {source['digest']}, which is now {profile.digest}: "
                            "run oneiric compile"]
    try:
        again = render(profile, source["profile"], recorded_options(text)).files.get(path.name)
    except DeployError as exc:
        return digest, ["profile link"], [f"cannot render it again: {exc}"]
    if again != text:
        return digest, ["profile link"], ["differs from what its profile renders (edited by hand?): run oneiric compile"]
    return digest, ["profile link", "rendered from it"], []
