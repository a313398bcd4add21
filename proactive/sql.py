"""Raw SQL composed by name.

A fragment is text with named placeholders, `%(name)s`, and a dict binding each name. Combining
fragments joins the texts in any order and merges the dicts (`merge_params`), so no value's
meaning depends on where it sits in a list. A name may occur several times in a statement (the
tenant, the as-of time); it must then mean one value: binding it to two different values is a
programming error and raises instead of silently running the wrong query. Fragments that repeat
per item (a metric, a pattern, a window) put the item in their names (`m3_since`, `w7_start`).

Placeholders and mappings are what psycopg (and Django's cursor) take for a dict of parameters;
positional `%s` and named `%(name)s` cannot be mixed in one statement.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Params = dict[str, Any]


def _same(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # e.g. arrays, whose == is elementwise
        return False


def merge_params(*parts: Mapping[str, Any]) -> Params:
    """The union of named parameter sets; raises ValueError when a name is bound to two values."""
    out: Params = {}
    for part in parts:
        for name, value in part.items():
            if name in out and not _same(out[name], value):
                raise ValueError(f"SQL parameter {name!r} is bound to {out[name]!r} and to {value!r}")
            out[name] = value
    return out
