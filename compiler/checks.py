"""Resolve stage, part 4: the cross-reference and safety checks of SPEC 2.

Each check takes resolved values plus the documents (for positions) and
returns diagnostics; none of them raises or prints.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Iterable

from compiler.builtins import BUILTIN_FACTORY_PREFIXES
from compiler.diagnostics import Diagnostic, Document, Span, Suggester, suggest
from compiler.layering import Layers
from runtime import contract
from runtime.contract import SECRET_PREFIX, SECRET_REF
from runtime.model import Entry


def entry_span(entry: Entry) -> Span | None:
    return Span.parse(entry.source)


def field_span(docs: dict[str, Document], entry: Entry, suffix: str) -> tuple[Span | None, str]:
    """Span and pointer of a field inside a manifest entry (entry.source names file and position)."""
    span = entry_span(entry)
    doc = docs.get(span.file) if span else None
    pointer = _entry_pointer(doc, span)
    if doc is None or pointer is None:
        return span, suffix
    return doc.span(pointer + suffix), pointer + suffix


def _entry_pointer(doc: Document | None, span: Span | None) -> str | None:
    if doc is None or span is None:
        return None
    return _entry_index(doc).get(span)


#: the last few documents' span -> "/entries/<i>" tables (each holds its positions dict, so an id is never
#: reused while cached); built once per document instead of scanning every position per lookup
_ENTRY_INDEX: dict[int, tuple[dict, dict[Span, str]]] = {}


def _entry_index(doc: Document) -> dict[Span, str]:
    cached = _ENTRY_INDEX.get(id(doc.positions))
    if cached is not None and cached[0] is doc.positions:
        return cached[1]
    index: dict[Span, str] = {}
    for pointer, where in doc.positions.items():
        if pointer.startswith("/entries/") and pointer.count("/") == 2:
            index.setdefault(where, pointer)
    while len(_ENTRY_INDEX) >= 8:
        del _ENTRY_INDEX[next(iter(_ENTRY_INDEX))]
    _ENTRY_INDEX[id(doc.positions)] = (doc.positions, index)
    return index


def check_dags(entries: Iterable[Entry], docs: dict[str, Document]) -> list[Diagnostic]:
    """Each workflow's DAG: its tasks exist here; ids, dependencies, cycles and retry bounds are the
    runtime's own check (runtime.workflows.dag.check_nodes), reported with positions and hints."""
    from runtime.workflows.dag import check_nodes

    tasks = {e.key for e in entries if e.domain == "task"}
    near_task = Suggester(tasks)
    out: list[Diagnostic] = []
    for entry in entries:
        if entry.domain != "workflow":
            continue
        if entry.dag is None:
            span, pointer = field_span(docs, entry, "")
            out.append(Diagnostic("dag.missing", f"workflow {entry.key!r} has no dag.nodes", span, pointer))
            continue
        nodes = entry.dag.nodes
        ids = {n.id for n in nodes}
        found: list[tuple[tuple[int, int], Diagnostic]] = []
        for i, node in enumerate(nodes):
            if node.task not in tasks:
                span, pointer = field_span(docs, entry, f"/dag/nodes/{i}/task")
                near = near_task(node.task)
                found.append(((0, i * 2 + 1), Diagnostic(
                    "dag.unknown-task", f"workflow {entry.key!r}: node {node.id!r} names task {node.task!r}, which "
                    "no task entry provides", span, pointer, f"did you mean {near!r}?" if near else None)))
        phase = {"dag.duplicate-id": 0, "dag.retry-policy": 0, "dag.unknown-dependency": 1, "dag.cycle": 2}
        for n, problem in enumerate(check_nodes(entry.key, nodes)):
            span, pointer = field_span(docs, entry, problem.pointer)
            hint = None
            if problem.code == "dag.unknown-dependency":
                near = suggest(problem.name, ids)
                hint = f"did you mean {near!r}?" if near else None
            elif problem.code == "dag.cycle":
                hint = "remove one of these depends_on edges"
            index = int(problem.pointer.split("/")[3]) if phase[problem.code] == 0 else n
            found.append(((phase[problem.code], index * 2), Diagnostic(problem.code, problem.message, span, pointer,
                                                                        hint)))
        out.extend(d for _, d in sorted(found, key=lambda item: item[0]))
    return out


_UNSEEN: Any = object()  # a memo's "not decided yet" (None is a decision)


def check_factories(entries: Iterable[Entry], allowlist: list[str], docs: dict[str, Document],
                    settings_span: Span | None) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    sources: dict[str, Path | None] = {}  # module -> its source file, found once per module per check
    verdicts: dict[str, str | None] = {}  # factory -> its finding's rule (None: fine), decided once per factory
    for entry in entries:
        verdict = verdicts.get(entry.factory, _UNSEEN)
        if verdict is _UNSEEN:
            verdict = verdicts[entry.factory] = _factory_verdict(entry.factory, allowlist, sources)
        if verdict is None:
            continue
        module, _, attr = entry.factory.partition(":")
        if verdict == "factory.not-allowed":
            span, pointer = field_span(docs, entry, "/factory")
            out.append(Diagnostic("factory.not-allowed", f"factory {entry.factory!r} is outside the factory allowlist "
                                  f"({', '.join(allowlist) or 'empty'})", span, pointer,
                                  "add its module prefix to [security] factory_allowlist"
                                  + (f" at {settings_span}" if settings_span else "")))
        else:
            span, pointer = field_span(docs, entry, "/factory")
            out.append(Diagnostic("factory.not-defined", f"factory {entry.factory!r}: {attr} is not defined in "
                                  f"{module} itself (an imported name would let an allowed module lend out another)",
                                  span, pointer, "name a function or class the module defines"))
    return out


def _factory_verdict(factory: str, allowlist: list[str], sources: dict[str, Path | None]) -> str | None:
    module, _, attr = factory.partition(":")
    if module.startswith(".") or not _allowed(module, allowlist):
        return "factory.not-allowed"
    if (attr.startswith("__") and attr.endswith("__")) or _defined_in(module, attr, sources) is False:
        return "factory.not-defined"
    return None


def check_task_signatures(entries: Iterable[Entry], docs: dict[str, Document]) -> list[Diagnostic]:
    """A task factory that `def`ines fewer or more required positional parameters than the contract's
    three, read with `ast` (nothing imported); an assigned or C callable is checked when the runtime loads it."""
    out: list[Diagnostic] = []
    sources: dict[str, Path | None] = {}
    params: dict[str, tuple | None] = {}  # factory -> its parameters, read once per factory per check
    for entry in entries:
        if entry.domain != "task":
            continue
        module, _, attr = entry.factory.partition(":")
        found = params.get(entry.factory, _UNSEEN)
        if found is _UNSEEN:
            found = params[entry.factory] = _params_of(module, attr, sources)
        if found is None or _takes_three(found):
            continue
        span, pointer = field_span(docs, entry, "/factory")
        out.append(Diagnostic("task.signature", f"task {entry.key!r}: {entry.factory} is defined as "
                              f"{attr}({found[3]}), but a task is called as fn(payload, context, inputs)",
                              span, pointer, "take three positional parameters (payload, context, inputs); "
                              "see docs/getting-started.md, \"The task contract\""))
    return out


def _takes_three(params: tuple[int, int, bool, str, int]) -> bool:
    positional, required, varargs, _, required_keyword_only = params
    return required <= 3 and (positional >= 3 or varargs) and required_keyword_only == 0


def _function_params(path: str, mtime_ns: int) -> dict[str, tuple[int, int, bool, str, int]]:
    """Top-level `def`s of a source file (also under a top-level `if`/`try`): name -> (positional
    parameters, required ones, *args, the parameter list as written, required keyword-only ones)."""
    return _outline(path, mtime_ns)[1]


def module_source(module: str) -> Path | None:
    """The .py file of `module`, found without importing it (or any parent package); None when unknown."""
    import importlib.util

    parts = module.split(".")
    try:  # the top-level name only: finding it runs no module code (a dotted name would import its parents)
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if len(parts) == 1:
        candidates = [Path(spec.origin)] if spec.origin and spec.origin.endswith(".py") else []
    else:
        candidates = [c for loc in (spec.submodule_search_locations or [])
                      for c in (Path(loc, *parts[1:]).with_suffix(".py"), Path(loc, *parts[1:], "__init__.py"))]
    return next((c for c in candidates if c.is_file()), None)


def _defined_in(module: str, attr: str, sources: dict[str, Path | None] | None = None) -> bool | None:
    """Whether `module`'s source defines `attr` at top level (def, class or assignment, not an import),
    read with `ast` without importing anything; None when the source cannot be found (checked at runtime).
    `sources` is the caller's module -> source cache (one lookup per module, not per entry)."""
    source = _cached_source(module, {} if sources is None else sources)
    return None if source is None else attr in _top_level_names(str(source), _mtime_ns(source))


def _params_of(module: str, attr: str, sources: dict[str, Path | None]) -> tuple | None:
    source = _cached_source(module, sources)
    return _function_params(str(source), _mtime_ns(source)).get(attr) if source else None


def _cached_source(module: str, sources: dict[str, Path | None]) -> Path | None:
    if module not in sources:
        sources[module] = module_source(module)
    return sources[module]


def _mtime_ns(path: Path) -> int:
    """Part of the parse caches' keys, so an edited file is read again (also in a long-lived process)."""
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _top_level_names(path: str, mtime_ns: int) -> frozenset[str]:
    return _outline(path, mtime_ns)[0]


@functools.lru_cache(maxsize=256)
def _outline(path: str, mtime_ns: int) -> tuple[frozenset[str], dict[str, tuple[int, int, bool, str, int]]]:
    """One parse per source file: the names it defines at the top level (also under `if`/`try`) and each
    such `def`'s parameters, so the factory check and the signature check see the same definitions."""
    import ast

    try:
        tree = ast.parse(open(path, "rb").read())
    except (OSError, SyntaxError, ValueError):
        return frozenset(), {}
    names: set[str] = set()
    params: dict[str, tuple[int, int, bool, str, int]] = {}

    def collect(body: list) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
                if not isinstance(node, ast.ClassDef):
                    args = node.args
                    positional = len(args.posonlyargs) + len(args.args)
                    required_kw = sum(1 for d in args.kw_defaults if d is None)
                    params[node.name] = (positional, positional - len(args.defaults), args.vararg is not None,
                                         ast.unparse(args), required_kw)
            elif isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.If):
                collect(node.body + node.orelse)
            elif isinstance(node, ast.Try):
                collect(node.body + node.orelse + node.finalbody + [n for h in node.handlers for n in h.body])

    collect(tree.body)
    return frozenset(names), params


def _allowed(module: str, allowlist: list[str]) -> bool:
    prefixes = list(allowlist) + list(BUILTIN_FACTORY_PREFIXES)
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def check_remote(layers: Layers, doc: Document | None) -> list[Diagnostic]:
    """runtime.contract.check_remote (the runtime re-runs it on env overrides), with a position."""
    problem = contract.check_remote({k[1]: v for k, v in layers.values.items() if len(k) == 2 and k[0] == "remote"})
    if problem is None:
        return []
    code, message, hint = problem
    pointer = "/remote/manifest_url"
    return [Diagnostic(code, message, doc.span(pointer) if doc else None, pointer, hint)]


def check_tasks_auth(layers: Layers, base_profile: str, doc: Document | None) -> list[Diagnostic]:
    """runtime.contract.check_tasks_auth (the runtime re-runs it on env overrides), with a position."""
    problem = contract.check_tasks_auth({k[1]: v for k, v in layers.values.items() if len(k) == 2 and k[0] == "http"},
                                        base_profile)
    if problem is None:
        return []
    code, message, hint = problem
    pointer = "/http/tasks_auth"
    return [Diagnostic(code, message, doc.span(pointer) if doc else None, pointer, hint)]


def check_credentials(layers: Layers, doc: Document | None) -> list[Diagnostic]:
    """A literal that looks like a credential is an error (runtime.contract.credential_literal, which the
    runtime re-runs on env overrides); the message never repeats the value."""
    out: list[Diagnostic] = []
    for path, value in sorted(layers.values.items()):
        found = contract.credential_literal(path, value)
        if found is None:
            continue
        message, hint = found
        pointer = "/" + "/".join(path)
        span = doc.span(pointer) if doc and layers.origin(path) not in (None, "schema default") else None
        out.append(Diagnostic("secret.literal", message, span, pointer, hint))
    return out


def collect_secret_refs(layers: Layers, doc: Document | None) -> tuple[dict[str, list[str]], list[Diagnostic]]:
    """ref -> dotted paths using it; malformed references are errors."""
    refs: dict[str, list[str]] = {}
    errors: list[Diagnostic] = []
    for path, value in sorted(layers.values.items()):
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item.startswith(SECRET_PREFIX):
                if not SECRET_REF.fullmatch(item):
                    pointer = "/" + "/".join(path)
                    errors.append(Diagnostic("secret.syntax", f"malformed secret reference at {'.'.join(path)}",
                                             doc.span(pointer) if doc else None, pointer,
                                             "write secret://NAME or secret://NAME@VERSION (letters, digits, - and _)"))
                    continue
                refs.setdefault(item, []).append(".".join(path))
    return refs, errors


def check_provider_settings_known(catalog, layers: Layers, doc: Document | None) -> list[Diagnostic]:
    """provider_settings for a provider nobody declares is almost always a typo."""
    known = {p for providers in catalog.values() for p in providers}
    named = sorted({p[2] for p in layers.values if len(p) >= 3 and p[:2] == ("adapters", "provider_settings")})
    out = []
    for name in named:
        if name not in known:
            near = suggest(name, known)
            pointer = f"/adapters/provider_settings/{name}"
            out.append(Diagnostic("select.unknown-provider", f"provider_settings for unknown provider {name!r}",
                                  doc.span(pointer, key=True) if doc else None, pointer,
                                  f"did you mean {near!r}?" if near else None))
    return out


def check_queue_categories(entries, catalog, layers: Layers, doc: Document | None,
                            docs: dict[str, Document]) -> list[Diagnostic]:
    """The workflows' queue category (global and per workflow) names an adapter key, and a per-workflow
    provider is one that key offers."""
    if not any(e.domain == "workflow" for e in entries):
        return []
    adapter_keys = [k for d, k in catalog if d == "adapter"]
    errors: list[Diagnostic] = []
    category = layers.get(("workflows", "options", "queue_category"), "queue")
    pointer = "/workflows/options/queue_category"
    _, found = check_queue_category(category, adapter_keys, pointer, doc.span(pointer) if doc else None)
    errors.extend(found)
    for entry in entries:
        scheduler = entry.metadata.get("scheduler") or {}
        if entry.domain == "workflow" and scheduler.get("queue_category"):
            key = resolve_category(scheduler["queue_category"], adapter_keys)
            if key is None:  # placed only when wrong: a position below an entry is made on first use
                span, ptr = field_span(docs, entry, "/metadata/scheduler/queue_category")
                errors.extend(check_queue_category(scheduler["queue_category"], adapter_keys, ptr, span)[1])
            provider = scheduler.get("provider")
            if key and provider and provider not in catalog[("adapter", key)]:
                span, ptr = field_span(docs, entry, "/metadata/scheduler/provider")
                errors.append(Diagnostic("workflow.queue-provider", f"workflow {entry.key!r}: adapter {key!r} has no "
                                         f"provider {provider!r}", span, ptr,
                                         f"providers: {', '.join(sorted(catalog[('adapter', key)]))}"))
    return errors


def check_auth_matches_queue(entries, chosen, catalog, layers: Layers, doc: Document | None) -> list[Diagnostic]:
    """The queue that delivers workflows must be able to pass the callback's authentication."""
    if not any(e.domain == "workflow" for e in entries):
        return []
    category = layers.get(("workflows", "options", "queue_category"), "queue")
    key = resolve_category(category, [k for d, k in catalog if d == "adapter"])
    choice = chosen.get(("adapter", key)) if key else None
    if choice is None:
        return []
    mode = layers.get(("http", "tasks_auth"))
    provider = choice.candidate.provider
    pointer = "/http/tasks_auth"
    span = doc.span(pointer) if doc else None
    if mode == "oidc" and provider == "local":
        return [Diagnostic("auth.queue", "tasks_auth = \"oidc\" cannot authenticate the local queue's deliveries "
                           "(it signs them with HMAC)", span, pointer, "use hmac with the local queue")]
    if mode == "oidc" and provider == "cloudtasks":
        base = ("adapters", "provider_settings", "cloudtasks")
        audience = layers.get(base + ("oidc_audience",)) or layers.get(base + ("http_target_url",))
        account = layers.get(base + ("service_account_email",))
        out = []
        if audience != layers.get(("http", "oidc_audience")):
            out.append(Diagnostic("auth.queue", f"Cloud Tasks will sign tokens for audience {audience!r} but [http] "
                                  f"oidc_audience is {layers.get(('http', 'oidc_audience'))!r}",
                                  doc.span("/http/oidc_audience") if doc else None, "/http/oidc_audience",
                                  "make them equal (the token audience is cloudtasks oidc_audience, else http_target_url)"))
        if account != layers.get(("http", "oidc_service_account")):
            out.append(Diagnostic("auth.queue", f"Cloud Tasks will sign tokens as {account!r} but [http] "
                                  f"oidc_service_account is {layers.get(('http', 'oidc_service_account'))!r}",
                                  doc.span("/http/oidc_service_account") if doc else None, "/http/oidc_service_account",
                                  "set [adapters.provider_settings.cloudtasks] service_account_email to the same account"))
        return out
    return []


def check_queue_category(category: str, adapter_keys: Iterable[str], pointer: str, span: Span | None) -> tuple[str | None, list[Diagnostic]]:
    key = resolve_category(category, adapter_keys)
    if key is None:
        keys = sorted(adapter_keys)
        return None, [Diagnostic("workflow.queue-category", f"queue_category {category!r} matches no adapter key",
                                 span, pointer, f"adapter keys: {', '.join(keys)}")]
    return key, []


def resolve_category(category: str, adapter_keys: Iterable[str]) -> str | None:
    """The adapter key equal to the category, else the longest key that is a dotted prefix of it."""
    keys = set(adapter_keys)
    parts = category.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in keys:
            return ".".join(parts[:n])
    return None
