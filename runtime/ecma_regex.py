"""JSON Schema regexes read as ECMA-262 reads them, with Python's `re`.

JSON Schema says `pattern` and `patternProperties` are ECMA-262 regular expressions; Python's `re`
reads the same text differently where config values meet it: `$` also matches before a final newline
(so `^[a-z]+$` accepted "abc\\n"), `.` matches `\\r` and U+2028/U+2029, `\\d` and `\\w` match
non-ASCII digits and letters, `\\b` follows Unicode word characters, and `\\s` differs at the edges
(U+FEFF, U+001C-U+001F, U+0085). `translate` rewrites exactly those constructs (ECMA-262 without the
`u`/`v`/`m`/`s` flags, which a schema cannot set) and the syntax Python spells otherwise (`(?<name>`,
`\\k<name>`, `\\cX`, `[]`, `[^]`) and Unicode General_Category escapes (`\\p{L}`, `\\p{Letter}`,
`\\P{Nd}`: JSON Schema patterns use Unicode semantics), so compiler and runtime agree with other JSON
Schema implementations. What stays Python's: `\\D`, `\\W`, `\\S`, `\\P{..}` inside a character class and
`re` syntax ECMA lacks; other Unicode properties (`\\p{Script=Greek}`) are refused with re.error.
Standard library only: the runtime's contract checks use it on the cold-start path.
"""

from __future__ import annotations

import re
import sys
from functools import lru_cache

#: ECMA-262 WhiteSpace and LineTerminator, the members of `\s`.
_SPACE = "\\t\\n\\x0b\\x0c\\r \\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
_NOT_LINE_END = "[^\\n\\r\\u2028\\u2029]"  # ECMA `.` without the `s` flag
_ESCAPES = {"d": "[0-9]", "D": "[^0-9]", "w": "[A-Za-z0-9_]", "W": "[^A-Za-z0-9_]",
            "s": f"[{_SPACE}]", "S": f"[^{_SPACE}]", "b": "(?a:\\b)", "B": "(?a:\\B)"}
_IN_CLASS = {"d": "0-9", "w": "A-Za-z0-9_", "s": _SPACE}
#: literal inside an ECMA class, but an escape-worthy set operator (or nested set) to Python's re
_CLASS_LITERALS = "[&~|"


#: General_Category values: short name -> long name (ECMA-262 accepts both, with or without `gc=`).
_CATEGORIES = {
    "L": "Letter", "LC": "Cased_Letter", "Lu": "Uppercase_Letter", "Ll": "Lowercase_Letter",
    "Lt": "Titlecase_Letter", "Lm": "Modifier_Letter", "Lo": "Other_Letter", "M": "Mark", "Mn": "Nonspacing_Mark",
    "Mc": "Spacing_Mark", "Me": "Enclosing_Mark", "N": "Number", "Nd": "Decimal_Number", "Nl": "Letter_Number",
    "No": "Other_Number", "P": "Punctuation", "Pc": "Connector_Punctuation", "Pd": "Dash_Punctuation",
    "Ps": "Open_Punctuation", "Pe": "Close_Punctuation", "Pi": "Initial_Punctuation", "Pf": "Final_Punctuation",
    "Po": "Other_Punctuation", "S": "Symbol", "Sm": "Math_Symbol", "Sc": "Currency_Symbol", "Sk": "Modifier_Symbol",
    "So": "Other_Symbol", "Z": "Separator", "Zs": "Space_Separator", "Zl": "Line_Separator",
    "Zp": "Paragraph_Separator", "C": "Other", "Cc": "Control", "Cf": "Format", "Cs": "Surrogate",
    "Co": "Private_Use", "Cn": "Unassigned",
}
_ALIASES = {"Combining_Mark": "M", "digit": "Nd", "punct": "P", "cntrl": "Cc",
            **{long: short for short, long in _CATEGORIES.items()}, **{short: short for short in _CATEGORIES}}


def _property_class(body: str) -> str:
    """The members of `\\p{body}` as the inside of a character class (code point ranges)."""
    name = body.split("=", 1)[1] if body.startswith(("gc=", "General_Category=")) else body
    short = _ALIASES.get(name)
    if short is None:
        raise re.error(f"unsupported Unicode property \\p{{{body}}} (only General_Category values such as L, Nd, Letter)")
    return _category_ranges(short)


@lru_cache(maxsize=None)
def _category_ranges(short: str) -> str:
    import unicodedata  # only for a pattern with a property escape

    wanted = {short} if len(short) == 2 and short != "LC" else ({"Lu", "Ll", "Lt"} if short == "LC" else None)
    ranges: list[str] = []
    start = -1
    for cp in range(sys.maxunicode + 2):
        cat = unicodedata.category(chr(cp)) if cp <= sys.maxunicode else ""
        member = cat in wanted if wanted is not None else cat[:1] == short
        if member and start < 0:
            start = cp
        elif not member and start >= 0:
            ranges.append(_esc(start) if start == cp - 1 else f"{_esc(start)}-{_esc(cp - 1)}")
            start = -1
    return "".join(ranges)


def _esc(cp: int) -> str:
    return f"\\U{cp:08x}"


def translate(pattern: str) -> str:
    """The Python `re` pattern that matches (with `re.search`) what `pattern` matches in ECMA-262."""
    out: list[str] = []
    i, n, in_class = 0, len(pattern), False
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt in "pP" and pattern.startswith("{", i + 2) and "}" in pattern[i + 3:]:
                end = pattern.index("}", i + 3)
                members = _property_class(pattern[i + 3:end])
                if in_class and nxt == "P":
                    raise re.error(f"\\P{{...}} inside a character class is not supported: {pattern!r}")
                out.append(members if in_class else f"[{'^' if nxt == 'P' else ''}{members}]")
                i = end + 1
                continue
            if nxt == "c" and i + 2 < n and pattern[i + 2].isascii() and pattern[i + 2].isalpha():
                out.append(f"\\x{ord(pattern[i + 2]) % 32:02x}")  # a control character: \\cJ is U+000A
                i += 3
                continue
            if in_class:
                out.append(_IN_CLASS.get(nxt, ch + nxt))
            elif nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
            elif nxt == "k" and pattern.startswith("<", i + 2) and ">" in pattern[i + 3:]:
                end = pattern.index(">", i + 3)
                out.append(f"(?P={pattern[i + 3:end]})")
                i = end + 1
                continue
            else:
                out.append(ch + nxt)
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
                out.append(ch)
            else:
                out.append("\\" + ch if ch in _CLASS_LITERALS else ch)
        elif pattern.startswith("[]", i):
            out.append("(?!)")  # the empty class matches nothing
            i += 2
            continue
        elif pattern.startswith("[^]", i):
            out.append("[\\s\\S]")  # any character, line terminators included
            i += 3
            continue
        elif ch == "[":
            in_class = True
            out.append(ch)
            if pattern.startswith("^", i + 1):
                out.append("^")
                i += 1
        elif ch == "$":
            out.append("\\Z")
        elif ch == ".":
            out.append(_NOT_LINE_END)
        elif pattern.startswith("(?<", i) and not pattern.startswith(("(?<=", "(?<!"), i):
            out.append("(?P<")
            i += 3
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


@lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> re.Pattern:
    """`translate(pattern)` compiled; re.error for a pattern Python cannot read."""
    return re.compile(translate(pattern))


def search(pattern: str, text: str) -> bool:
    """JSON Schema `pattern` semantics: the regex matches somewhere in `text` (not anchored)."""
    return compile_pattern(pattern).search(text) is not None
