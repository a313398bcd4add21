"""Customer attributes as of a cut-off, as risk-model features.

`Customer.attributes` holds today's values; `CustomerAttributeChange` holds every change and
since when we knew it, so a key's value as of T is the one of its latest change with
valid_from <= T, and a model trained on past cut-offs sees what it could have seen then.

    attribute.KEY            a numeric key's value (booleans as 0/1), NaN when none as of T
    attribute.KEY=VALUE      1 when a string key's value as of T is VALUE, 0 for another value,
                             NaN when the customer had none

Columns are chosen from the history known at the model's as-of time: numeric keys, and string
values held by at least MIN_CUSTOMERS customers, at most MAX_VALUES per key and MAX_KEYS keys (the
most widespread first), so an email or an id never becomes thousands of columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.db import connection
from psycopg.types.json import Jsonb

from proactive.features.compute import _packed, feature_session
from proactive.features.metrics import ATTRIBUTE_KEY_RE
from proactive.sql import Params

MIN_CUSTOMERS = 10
MAX_VALUES = 20
MAX_KEYS = 20
MAX_VALUE_LENGTH = 100
PREFIX = "attribute."


@dataclass(frozen=True)
class AttributeFeature:
    key: str
    value: str | None = None  # None: the key's number; else the 0/1 column of this string value

    def __str__(self) -> str:
        return f"{PREFIX}{self.key}" if self.value is None else f"{PREFIX}{self.key}={self.value}"


def parse_attribute(name: str) -> AttributeFeature | None:
    """The attribute feature a name stands for, or None when it is not one."""
    if not name.startswith(PREFIX):
        return None
    key, eq, value = name.removeprefix(PREFIX).partition("=")
    if not ATTRIBUTE_KEY_RE.match(key):
        return None
    return AttributeFeature(key, value if eq else None)


# Distinct customers per (key, type, string value) among the values known by the as-of time.
PROFILE_SQL = """
SELECT e.key, jsonb_typeof(e.value),
       CASE WHEN jsonb_typeof(e.value) = 'string' THEN e.value #>> '{}' END,
       count(DISTINCT ch.customer_id)
FROM proactive_customerattributechange ch, jsonb_each(ch.attributes) e
WHERE ch.tenant_id = %(tenant_id)s AND ch.valid_from <= %(as_of)s AND jsonb_typeof(e.value) <> 'null'
GROUP BY 1, 2, 3
"""


def attribute_features(*, tenant_id: int, as_of: datetime) -> list[AttributeFeature]:
    """The attribute columns of a model trained as of `as_of` (see the module docstring)."""
    with connection.cursor() as cur:
        cur.execute(PROFILE_SQL, {"tenant_id": tenant_id, "as_of": as_of})
        rows = cur.fetchall()
    types: dict[str, set[str]] = {}
    reach: dict[str, int] = {}
    values: dict[str, list[tuple[int, str]]] = {}
    for key, typ, value, customers in rows:
        types.setdefault(key, set()).add(typ)
        reach[key] = reach.get(key, 0) + customers
        if typ == "string" and customers >= MIN_CUSTOMERS and _usable(value):
            values.setdefault(key, []).append((customers, value))
    chosen: list[tuple[int, str, list[AttributeFeature]]] = []
    for key, kinds in types.items():
        if not ATTRIBUTE_KEY_RE.match(key):
            continue  # not nameable as a feature
        if kinds <= {"number", "boolean"}:
            columns = [AttributeFeature(key)]
        elif kinds == {"string"}:
            common = sorted(values.get(key, []), key=lambda cv: (-cv[0], cv[1]))[:MAX_VALUES]
            columns = [AttributeFeature(key, v) for _, v in sorted(common, key=lambda cv: cv[1])]
        else:
            columns = []  # mixed types: no stable meaning for a column
        if columns:
            chosen.append((reach[key], key, columns))
    chosen.sort(key=lambda c: (-c[0], c[1]))
    return [f for _, _, columns in sorted(chosen[:MAX_KEYS], key=lambda c: c[1]) for f in columns]


def _usable(value: str) -> bool:
    return 0 < len(value) <= MAX_VALUE_LENGTH and value.isprintable()


# Every recorded value of the wanted keys for a range of customers, with the interval it held:
# [since, until), until = the next change of the same key (infinity for the latest). `num` is
# the number (NaN otherwise), `col` the feature column of a string value (-1 for any other).
VALUES_SQL = """
SELECT ch.customer_id, k.i::int8 - 1 AS key_index,
       extract(epoch FROM ch.valid_from)::float8 AS since,
       coalesce(extract(epoch FROM lead(ch.valid_from) OVER w)::float8, 'Infinity') AS until,
       (jsonb_typeof(e.value) <> 'null')::int4 AS present,
       coalesce(CASE jsonb_typeof(e.value)
           WHEN 'boolean' THEN e.value::boolean::int::float8
           WHEN 'number' THEN CASE WHEN abs(e.value::numeric) < 1e300 THEN e.value::float8 END
       END, 'NaN') AS num,
       coalesce(v.col, -1)::int4 AS col
FROM proactive_customerattributechange ch
CROSS JOIN LATERAL jsonb_each(ch.attributes) e
JOIN unnest(%(keys)s::text[]) WITH ORDINALITY AS k(key, i) ON k.key = e.key
LEFT JOIN jsonb_to_recordset(%(values)s) AS v(key text, value text, col int)
       ON v.key = e.key AND e.value = to_jsonb(v.value)
WHERE ch.tenant_id = %(tenant_id)s AND ch.customer_id BETWEEN %(id_lo)s AND %(id_hi)s
  AND ch.valid_from <= %(last)s
WINDOW w AS (PARTITION BY ch.customer_id, e.key ORDER BY ch.valid_from)
"""


def attribute_matrices(
    *, tenant_id: int, as_ofs: Sequence[datetime], features: Sequence[AttributeFeature], ids: np.ndarray
) -> list[np.ndarray]:
    """One (len(ids), len(features)) matrix per as-of time for the sorted customer ids `ids` (a
    contiguous id range of the tenant's customers): each attribute's value as of that time."""
    n = len(ids)
    out = [np.full((n, len(features)), np.nan) for _ in as_ofs]
    if not len(features) or not n or not as_ofs:
        return out
    keys = list(dict.fromkeys(f.key for f in features))
    numeric_col = np.full(len(keys), -1)
    string_cols: dict[int, list[int]] = {}
    for j, f in enumerate(features):
        if f.value is None:
            numeric_col[keys.index(f.key)] = j
        else:
            string_cols.setdefault(keys.index(f.key), []).append(j)
    params: Params = {
        "tenant_id": tenant_id,
        "id_lo": int(ids[0]),
        "id_hi": int(ids[-1]),
        "last": max(as_ofs),
        "keys": keys,
        "values": Jsonb(
            [{"key": f.key, "value": f.value, "col": j} for j, f in enumerate(features) if f.value]
        ),
    }
    spec = [("customer_id", "int8"), ("key_index", "int8"), ("since", "float8"), ("until", "float8")]
    spec += [("present", "int4"), ("num", "float8"), ("col", "int4")]
    with feature_session() as cur:
        rows = _packed(cur, VALUES_SQL, params, spec)
    pos = np.minimum(np.searchsorted(ids, rows["customer_id"]), n - 1)
    known = ids[pos] == rows["customer_id"]
    for as_of, matrix in zip(as_ofs, out, strict=True):
        t = as_of.timestamp()
        held = known & (rows["since"] <= t) & (t < rows["until"])  # one row per (customer, key)
        key_index = rows["key_index"][held]
        at, num = pos[held], rows["num"][held]
        numeric = numeric_col[key_index] >= 0
        matrix[at[numeric], numeric_col[key_index[numeric]]] = num[numeric]
        present = rows["present"][held] == 1
        for k, cols in string_cols.items():
            sel = present & (key_index == k)
            matrix[np.ix_(at[sel], cols)] = 0.0
        col = rows["col"][held]
        matrix[at[col >= 0], col[col >= 0]] = 1.0
    return out
