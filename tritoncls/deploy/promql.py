"""PromQL text from data: string literals, exact-match regexes and selectors, escaped whatever the names hold.

Model and label names reach PromQL expressions (the rules' matchers, the dashboard's queries) and the series
notation of promtool's unit tests (``metric{label="value"}``). A double-quoted PromQL string is read with Go's
escapes (``strconv.Unquote``): a backslash or a double quote must be escaped and a raw newline ends the
string with an error, so every name goes through :func:`string_literal`. Regex matchers (``=~``) are RE2,
fully anchored; :func:`exact_alternation` escapes RE2's metacharacters first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

#: characters a PromQL double-quoted string cannot hold as themselves
_STRING_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: RE2's metacharacters; a backslash before any of them makes it literal
_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def string_literal(value: str) -> str:
    """``value`` as a double-quoted PromQL string: backslash, quote, newline, carriage return and tab
    escaped, other control characters as ``\\u00XX``; everything else (quotes of other kinds, braces,
    Chinese, emoji) kept as is."""
    out = []
    for char in value:
        if char in _STRING_ESCAPES:
            out.append(_STRING_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def regex_escape(value: str) -> str:
    """``value`` as an RE2 pattern matching exactly it (before string quoting)."""
    return "".join("\\" + char if char in _RE2_SPECIAL else char for char in value)


def exact_alternation(values: Iterable[str]) -> str:
    """A quoted PromQL regex matching exactly one of ``values`` (``=~`` matchers are anchored)."""
    return string_literal("|".join(regex_escape(value) for value in values))


def selector(metric: str, matchers: Mapping[str, str] | None = None, regex: Mapping[str, Iterable[str]] | None = None) -> str:
    """``metric{name="value",...,name=~"a|b"}`` with every value escaped."""
    parts = [f"{name}={string_literal(value)}" for name, value in (matchers or {}).items()]
    parts += [f"{name}=~{exact_alternation(values)}" for name, values in (regex or {}).items()]
    return f"{metric}{{{','.join(parts)}}}"
