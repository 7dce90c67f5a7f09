"""Resolve stage: validated documents -> the frozen manifest and profile artifacts (without digests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compiler import checks, deploy, state_checks
from compiler.catalog import Candidate, build_catalog, canonical_provider, choose
from compiler.convert import structure
from compiler.diagnostics import CompileError, Diagnostic, Document, pointer_from_parts
from compiler.envkeys import env_keys
from compiler.layering import SCHEMA_DEFAULT, Layers, build_layers, schema_defaults
from compiler.profiles import resolve_profile
from compiler.schema import check_document, check_subtree, first_error, load_schema
from runtime.about import VERSION
from runtime.contract import parse_secret_ref
from runtime.model import (
    MANIFEST_FORMAT, PROFILE_FORMAT, Entry, Input, ManifestArtifact, ManifestLink, ProfileArtifact,
    SecretRef, Selection,
)


@dataclass(frozen=True)
class Resolved:
    manifest: ManifestArtifact
    profile: ProfileArtifact


def load_entries(manifests: list[Document]) -> tuple[tuple[Entry, ...], list[Diagnostic]]:
    """Schema-check each manifest and structure its entries; duplicates across files are errors."""
    errors: list[Diagnostic] = []
    entries: list[Entry] = []
    seen: dict[tuple[str, str, str], str] = {}
    for doc in manifests:
        found = check_document(doc, "manifest.schema.json")
        if found:
            errors.extend(found)
            continue
        for i, raw in enumerate(doc.data["entries"]):
            where = str(doc.span(f"/entries/{i}"))
            entry = structure({**raw, "source": where}, Entry)
            ident = (entry.domain, entry.key, entry.provider)
            if ident in seen:
                errors.append(Diagnostic("manifest.duplicate-entry",
                                         f"entry {'/'.join(ident)} is defined twice (first at {seen[ident]})",
                                         doc.span(f"/entries/{i}"), f"/entries/{i}"))
                continue
            seen[ident] = where
            if entry.settings_schema is not None:
                try:  # only whether it is a valid schema counts: its findings on {} are dropped, so they are
                    # placed in a document without positions (the manifest's deep ones are made on first use)
                    check_subtree(Document(doc.path, None, ""), {}, entry.settings_schema,
                                  f"/entries/{i}/settings_schema")
                except Exception as exc:  # fastschema.InvalidSchema or jsonschema.SchemaError
                    pointer = f"/entries/{i}/settings_schema" + getattr(exc, "pointer", "")
                    errors.append(Diagnostic("manifest.settings-schema", f"settings_schema is not a valid JSON Schema: "
                                             f"{getattr(exc, 'message', exc)}", doc.span(pointer), pointer))
            entries.append(entry)
    entries.sort(key=lambda e: (e.domain, e.key, e.provider))
    return tuple(entries), errors


def build_manifest(manifests: list[Document], entries: tuple[Entry, ...]) -> ManifestArtifact:
    return ManifestArtifact(
        format=MANIFEST_FORMAT,
        compiler_version=VERSION,
        sources=tuple(doc.data["source"] for doc in manifests),
        inputs=tuple(Input(doc.path, doc.sha256, "manifest") for doc in manifests),
        entries=entries,
    )


def resolve(profile_name: str, settings: Document | None, manifests: list[Document],
            manifest_file: str, manifest_digest_of) -> Resolved:
    """Everything for one profile; raises CompileError with every diagnostic found."""
    errors: list[Diagnostic] = []
    entries, found = load_entries(manifests)
    errors.extend(found)
    if settings is not None:
        errors.extend(check_document(settings, "settings.schema.json"))
    if errors:
        raise CompileError(errors)
    profile = resolve_profile(profile_name, settings)
    if isinstance(profile, list):
        raise CompileError(profile)
    layers = build_layers(load_schema("settings.schema.json"), profile, settings)
    docs = {doc.path: doc for doc in manifests}

    catalog = build_catalog(entries)
    chosen, found = choose(catalog, layers, settings)
    errors.extend(found)
    canonicalise_secrets_provider(layers)
    default_hmac_key(layers)
    selections: list[Selection] = []
    provider_schemas: dict[tuple[str, ...], dict[str, Any]] = {}
    for (domain, key), choice in sorted(chosen.items()):
        selection, found = _provider_settings(choice.candidate, choice.reason, layers, settings, domain, key)
        errors.extend(found)
        selections.append(selection)
        if selection.settings_path:
            provider_schemas[tuple(selection.settings_path.split("."))] = choice.candidate.schema or {}
    errors.extend(checks.check_provider_settings_known(catalog, layers, settings))

    errors.extend(checks.check_dags(entries, docs))
    allow_span = settings.span("/security/factory_allowlist") if settings and settings.positions.get(
        "/security/factory_allowlist") else None
    errors.extend(checks.check_factories(entries, layers.get(("security", "factory_allowlist"), []), docs, allow_span))
    errors.extend(checks.check_task_signatures(entries, docs))
    errors.extend(checks.check_remote(layers, settings))
    errors.extend(checks.check_tasks_auth(layers, profile.base, settings))
    errors.extend(checks.check_credentials(layers, settings))
    errors.extend(checks.check_queue_categories(entries, catalog, layers, settings, docs))
    errors.extend(checks.check_auth_matches_queue(entries, chosen, catalog, layers, settings))
    category = layers.get(("workflows", "options", "queue_category"), "queue")
    errors.extend(deploy.check_deploy(layers, settings, deploy.dispatch_deadline(selections, category)))
    errors.extend(state_checks.check_state(layers, settings))
    errors.extend(state_checks.check_hmac_window(entries, chosen, [k for d, k in catalog if d == "adapter"], layers,
                                                 settings))
    refs, found = checks.collect_secret_refs(layers, settings)
    errors.extend(found)
    if errors:
        raise CompileError(errors)

    for entry in entries:
        chosen_one = chosen.get((entry.domain, entry.key))
        if chosen_one and chosen_one.candidate.provider == entry.provider:
            for name in entry.requires_secrets:
                refs.setdefault(f"secret://{name}", []).append(f"entry:{entry.domain}/{entry.key}/{entry.provider}")

    manifest = build_manifest(manifests, entries)
    inputs = ([Input(settings.path, settings.sha256, "settings")] if settings else []) + list(manifest.inputs)
    profile_artifact = ProfileArtifact(
        format=PROFILE_FORMAT,
        compiler_version=VERSION,
        profile=profile,
        inputs=tuple(inputs),
        settings=layers.tree(),
        provenance=layers.dotted_provenance(),
        selections=tuple(selections),
        secrets=tuple(_secret_refs(refs)),
        env_keys=tuple(env_keys(layers, provider_schemas)),
        manifest=ManifestLink(manifest_file, manifest_digest_of(manifest)),
    )
    return Resolved(manifest, profile_artifact)


#: The key `tasks_auth = "hmac"` (the default) signs with when [http] hmac_key is not written.
DEFAULT_HMAC_KEY = "secret://tasks-hmac-key"


def default_hmac_key(layers: Layers) -> None:
    """hmac is the default mode (the only one the local queue can pass) and a key is a secret *reference*:
    defaulting the reference, not the value, makes a settings file that never mentions [http] complete
    (no "hmac needs hmac_key" for a mode nobody chose), while none/oidc profiles reference no key."""
    path = ("http", "hmac_key")
    if layers.get(("http", "tasks_auth")) == "hmac" and not layers.get(path):
        layers.set(path, DEFAULT_HMAC_KEY, "default for tasks_auth = hmac")


def canonicalise_secrets_provider(layers: Layers) -> str:
    """Rewrite the `gcp` alias in place, keeping the leaf's provenance."""
    path = ("secrets", "provider")
    name = canonical_provider("adapter", "secrets", layers.get(path, "env"))
    layers.values[path] = name
    return name


def _provider_settings(candidate: Candidate, reason: str, layers: Layers, doc: Document | None,
                       domain: str, key: str) -> tuple[Selection, list[Diagnostic]]:
    """Validate the selected provider's settings and fill its schema defaults into the layers."""
    if (domain, key) == ("adapter", "secrets"):
        prefix: tuple[str, ...] = ("secrets",)
        skip = {"provider"}
    elif domain == "adapter":
        prefix = ("adapters", "provider_settings", candidate.provider)
        skip = set()
    else:  # only adapters take settings ([adapters.provider_settings.<provider>])
        return Selection(domain=domain, key=key, provider=candidate.provider, factory=candidate.factory, settings={},
                         origin=candidate.origin, reason=reason, required=candidate.required), []
    raw = _subtree(doc, prefix, skip) if doc is not None else {}
    errors: list[Diagnostic] = []
    if candidate.schema is not None and doc is not None:
        errors = check_subtree(doc, raw, candidate.schema, pointer_from_parts(prefix))
    elif candidate.schema is not None:
        if first_error(candidate.schema, raw) is not None:
            errors = [Diagnostic("schema.provider", f"{domain} {key!r} provider {candidate.provider!r} needs settings "
                                 "(no settings file)", None, pointer_from_parts(prefix))]
    origin = SCHEMA_DEFAULT if candidate.origin == "builtin" else f"manifest default ({candidate.origin})"
    for path, value in schema_defaults(candidate.schema or {}).items():
        layers.setdefault(prefix + path, value, origin)
    values = {p[len(prefix)]: v for p, v in layers.values.items()
              if p[:len(prefix)] == prefix and len(p) == len(prefix) + 1 and p[len(prefix)] not in skip}
    selection = Selection(
        domain=domain, key=key, provider=candidate.provider, factory=candidate.factory,
        settings=dict(sorted(values.items())), origin=candidate.origin, reason=reason,
        required=candidate.required, settings_path=".".join(prefix),
    )
    return selection, errors


def _subtree(doc: Document, prefix: tuple[str, ...], skip: set[str]) -> dict[str, Any]:
    node: Any = doc.data
    for part in prefix:
        if not isinstance(node, dict) or part not in node:
            return {}
        node = node[part]
    return {k: v for k, v in node.items() if k not in skip} if isinstance(node, dict) else {}


def _secret_refs(refs: dict[str, list[str]]) -> list[SecretRef]:
    out = []
    for ref, used_by in sorted(refs.items()):
        name, version = parse_secret_ref(ref)
        out.append(SecretRef(ref=ref, name=name, version=version or "latest",
                             used_by=tuple(sorted(set(used_by)))))
    return out
