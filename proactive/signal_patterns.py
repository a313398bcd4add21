"""Signal-name patterns: a name (`error.sync_failed`) or a prefix ending in `*` (`error.*`).

Playbook metrics, the prediction target (contact or activity signals), labels, monitoring and
the pages all match signal names against such patterns; this module is the one place that
says what a match is, in SQL and in Python, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def is_prefix(pattern: str) -> bool:
    return pattern.endswith("*")


def pattern_prefix(pattern: str) -> str:
    """The literal part of a pattern: the prefix of `x.*`, the name itself otherwise."""
    return pattern[:-1] if is_prefix(pattern) else pattern


def matches(name: str, pattern: str) -> bool:
    return name.startswith(pattern[:-1]) if is_prefix(pattern) else name == pattern


def matches_any(name: str, patterns: Iterable[str]) -> bool:
    return any(matches(name, p) for p in patterns)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def patterns_sql(patterns: Iterable[str], column: str, name: str) -> tuple[str, dict[str, Any]]:
    """A boolean SQL expression over `column` (a trusted column reference) true when the
    name matches any pattern; FALSE for no patterns. Two array parameters however many
    patterns, so the statement text does not vary with the tenant's settings. They are named
    (`proactive.sql`): `NAME_names` for the exact names, `NAME_prefixes` for the prefixes;
    give each pattern set of one statement its own `name`."""
    patterns = list(patterns)
    exact = [p for p in patterns if not is_prefix(p)]
    prefixes = [_like_escape(pattern_prefix(p)) + "%" for p in patterns if is_prefix(p)]
    parts: list[str] = []
    params: dict[str, Any] = {}
    if exact:
        parts.append(f"{column} = ANY(%({name}_names)s)")
        params[f"{name}_names"] = exact
    if prefixes:
        parts.append(f"{column} LIKE ANY(%({name}_prefixes)s)")
        params[f"{name}_prefixes"] = prefixes
    if not parts:
        return "FALSE", {}
    return "(" + " OR ".join(parts) + ")", params
