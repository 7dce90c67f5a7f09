"""Load stage for a whole project: which settings and manifest files make up each profile."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from compiler.builtins import PROFILES
from compiler.diagnostics import Diagnostic, Document, Span

SETTINGS_DIR = "config"
MANIFEST_DIR = "deployment/manifests"


@dataclass
class Project:
    root: Path
    settings: dict[str, Document] = field(default_factory=dict)  # profile name -> settings document
    manifests: list[Document] = field(default_factory=list)
    errors: list[Diagnostic] = field(default_factory=list)

    def profile_names(self) -> list[str]:
        return sorted(self.settings) or ["default"]


def relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def load_file(path: Path, root: Path) -> Document | list[Diagnostic]:
    """Load one YAML or TOML file by extension; the document's path is relative to root."""
    rel = relative(path, root)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return [Diagnostic("io", f"cannot read: {exc.strerror or exc}", Span(rel, 1, 1))]
    if path.suffix == ".toml":  # each loader imports its library; load only the one needed
        from compiler.loaders.toml import load_toml

        return load_toml(raw, rel)
    from compiler.loaders.yaml import load_yaml

    return load_yaml(raw, rel)


def manifest_paths(root: Path) -> list[Path]:
    """The manifest files a compile reads: deployment/manifests/*.yaml and *.yml, sorted."""
    return [p for p in sorted((root / MANIFEST_DIR).glob("*.y*ml")) if p.suffix in (".yaml", ".yml")]


def settings_paths(root: Path) -> list[Path]:
    """The settings files a compile reads: config/*.toml, sorted."""
    return sorted((root / SETTINGS_DIR).glob("*.toml"))


def load_project(root: Path) -> Project:
    project = Project(root)
    project.manifests, project.errors = load_manifests(root)
    return _load_settings(project)


def load_manifests(root: Path) -> tuple[list[Document], list[Diagnostic]]:
    """The project's manifest files, and the errors of those that do not load."""
    manifests: list[Document] = []
    errors: list[Diagnostic] = []
    for path in manifest_paths(root):
        doc = load_file(path, root)
        if isinstance(doc, list):
            errors.extend(doc)
        else:
            manifests.append(doc)
    return manifests, errors


def load_settings(root: Path) -> Project:
    """The project's settings files only (what `manifest validate` and `manifest pack` check manifests with)."""
    return _load_settings(Project(root))


def _load_settings(project: Project) -> Project:
    root = project.root
    for path in settings_paths(root):
        doc = load_file(path, root)
        if isinstance(doc, list):
            project.errors.extend(doc)
            continue
        profile = doc.data.get("profile", {}) if isinstance(doc.data, dict) else {}
        name = profile.get("name") if isinstance(profile, dict) and isinstance(profile.get("name"), str) else path.stem
        if name in project.settings:
            other = project.settings[name].path
            project.errors.append(Diagnostic("project.duplicate-profile",
                                             f"profile {name!r} is also defined by {other}",
                                             doc.span("/profile/name"), "/profile/name"))
            continue
        project.settings[name] = doc
    return project


def settings_for(project: Project, name: str) -> Document | None | Diagnostic:
    if name in project.settings:
        return project.settings[name]
    if name in PROFILES:
        return None
    return Diagnostic("project.unknown-profile", f"no settings file defines profile {name!r} and it is not built in",
                      None, "", f"add {SETTINGS_DIR}/{name}.toml or use one of: "
                      + ", ".join(sorted(set(PROFILES) | set(project.settings))))
