"""Findings as values: positions, diagnostics and the loaded-document type every stage shares."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable, Iterable, NamedTuple


class Span(NamedTuple):
    """A 1-based line and column in a project-relative file (a tuple: loaders make one per node)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    @classmethod
    def parse(cls, text: str) -> "Span | None":
        """`file:line:col` back to a Span (None for origins like "builtin")."""
        file, _, rest = text.rpartition(":")
        file, _, line = file.rpartition(":")
        if not file or not line.isdigit() or not rest.isdigit():
            return None
        return cls(file, int(line), int(rest))


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding. `pointer` is a JSON pointer into the document; `rule` names the check."""

    rule: str
    message: str
    span: Span | None = None
    pointer: str = ""
    hint: str | None = None

    @property
    def json_path(self) -> str:
        return pointer_to_path(self.pointer)

    def sort_key(self) -> tuple:
        if self.span is None:
            return ("", 0, 0, self.pointer, self.message)
        return (self.span.file, self.span.line, self.span.col, self.pointer, self.message)


class CompileError(Exception):
    """Raised to stop a stage with every diagnostic collected so far."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics, key=Diagnostic.sort_key)
        super().__init__(f"{len(self.diagnostics)} error(s)")


class Document:
    """A loaded file: JSON-compatible data plus where each value and key sits in the source.

    `positions`: JSON pointer -> span of the value; `key_positions`: JSON pointer -> span of the mapping key
    that holds the value; `readings`: JSON pointer -> how another reading of the same text differs (a YAML
    1.1 `no` is false, 1.2 reads a string), for the hint of an error at that value.

    A loader may hand over the positions of pointers up to `complete_depth` tokens only, with `complete`, a
    function that returns all of them: they are made on first use. A valid 10,000-entry manifest's compile
    only asks for `/entries/<i>`, and making a span for each of its 170,000 values and keys was a third of
    its load time (bench/compile.py, stage "read manifest + YAML walk").
    """

    __slots__ = ("path", "data", "sha256", "_positions", "_key_positions", "readings", "_complete", "_depth")

    def __init__(self, path: str, data: Any, sha256: str, positions: dict[str, Span] | None = None,
                 key_positions: dict[str, Span] | None = None, readings: dict[str, str] | None = None, *,
                 complete: Callable[[], tuple[dict[str, Span], dict[str, Span]]] | None = None,
                 complete_depth: int = 0) -> None:
        self.path = path  # project-relative, forward slashes
        self.data = data
        self.sha256 = sha256
        self._positions = {} if positions is None else positions
        self._key_positions = {} if key_positions is None else key_positions
        self.readings = {} if readings is None else readings
        self._complete = complete
        self._depth = complete_depth

    @property
    def positions(self) -> dict[str, Span]:
        if self._complete is not None:
            self._make_positions()
        return self._positions

    @property
    def key_positions(self) -> dict[str, Span]:
        if self._complete is not None:
            self._make_positions()
        return self._key_positions

    def _make_positions(self) -> None:
        complete, self._complete = self._complete, None
        self._positions, self._key_positions = complete()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return ((self.path, self.data, self.sha256, self.positions, self.key_positions, self.readings)
                == (other.path, other.data, other.sha256, other.positions, other.key_positions, other.readings))

    __hash__ = None  # type: ignore[assignment]  # mutable tables, as the dataclass it was

    def __repr__(self) -> str:
        return (f"Document(path={self.path!r}, data={self.data!r}, sha256={self.sha256!r}, "
                f"positions={self.positions!r}, key_positions={self.key_positions!r}, readings={self.readings!r})")

    def span(self, pointer: str, *, key: bool = False) -> Span:
        """The span of `pointer`, or of its nearest ancestor that has one."""
        if self._complete is not None and pointer.count("/") <= self._depth:
            # the pointer and all its ancestors are within the tables at hand: nothing more to make
            positions, key_positions = self._positions, self._key_positions
        else:
            positions, key_positions = self.positions, self.key_positions
        table = key_positions if key else positions
        probe = pointer
        while True:
            if probe in table:
                return table[probe]
            if key and probe in positions:
                return positions[probe]
            if not probe:
                return Span(self.path, 1, 1)
            probe = probe.rsplit("/", 1)[0]


def escape_token(token: str | int) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer_join(pointer: str, token: str | int) -> str:
    if isinstance(token, str) and ("~" in token or "/" in token):
        token = escape_token(token)
    return f"{pointer}/{token}"


def pointer_from_parts(parts: Iterable[str | int]) -> str:
    return "".join("/" + escape_token(p) for p in parts)


def pointer_to_path(pointer: str) -> str:
    """`/entries/0/key` -> `$.entries[0].key`, as check-jsonschema users read paths."""
    out = "$"
    if not pointer:
        return out
    for raw in pointer.split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        if token.isdigit():
            out += f"[{token}]"
        elif token.isidentifier() or all(c.isalnum() or c in "_-" for c in token) and token:
            out += f".{token}"
        else:
            out += f"[{token!r}]"
    return out


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """The closest known name to a misspelt one, if any is close enough."""
    return Suggester(candidates)(word)


class Suggester:
    """`suggest` for many words against one set of names, in time linear in the number of words.

    Up to EXHAUSTIVE names, every name is compared (difflib, as `suggest` always did). Above that, each
    word is compared only with the SHORTLIST names that share the most character trigrams with it,
    found through an index of the names' trigrams; a trigram more than COMMON names share (a common
    prefix) is not looked up, unless the word has no rarer one (then its first COMMON names are). So
    each word costs a bounded amount of work, whatever the number of names: a hint may miss the nearest
    name of a huge set, the price of not comparing N misspellings with N names (1,000 errors against
    1,000 tasks took 20 s).
    """

    EXHAUSTIVE = 200
    SHORTLIST = 10
    COMMON = 64

    def __init__(self, candidates: Iterable[str]) -> None:
        self.names = sorted(set(candidates))
        self._memo: dict[str, str | None] = {}
        self._index: dict[str, list[int]] | None = None  # built by the first lookup: most checks need none

    def __call__(self, word: str) -> str | None:
        if word not in self._memo:
            pool = self.names if len(self.names) <= self.EXHAUSTIVE else self._shortlist(word)
            matches = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
            self._memo[word] = matches[0] if matches else None
        return self._memo[word]

    def _shortlist(self, word: str) -> list[str]:
        if self._index is None:
            self._index = {}
            for i, name in enumerate(self.names):
                for gram in _trigrams(name):
                    self._index.setdefault(gram, []).append(i)
        postings = sorted((p for p in map(self._index.get, _trigrams(word)) if p), key=len)  # type: ignore[union-attr]
        usable = [p for p in postings if len(p) <= self.COMMON] or [p[:self.COMMON] for p in postings[:1]]
        shared: dict[int, int] = {}
        for hits in usable:
            for i in hits:
                shared[i] = shared.get(i, 0) + 1
        best = sorted(shared, key=lambda i: (-shared[i], abs(len(self.names[i]) - len(word)), i))[:self.SHORTLIST]
        return [self.names[i] for i in sorted(best)]


def _trigrams(word: str) -> set[str]:
    padded = f"^{word}$"
    return {padded[i:i + 3] for i in range(len(padded) - 2)}
