"""Property-based tests (Hypothesis) of the two parsers that take tenant JSON.

- The condition parser never fails with anything but ConditionError, whatever JSON it is
  given, and a tree it accepts round-trips: serialised back to JSON it parses to the same
  tree, renders as text and compiles to SQL.
- The ingestion validators classify any record as an error or a clean row, never raise,
  and accept every well-formed record.
"""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.conditions import (
    All,
    AnyOf,
    ConditionError,
    Leaf,
    Not,
    columns_for,
    compile_sql,
    condition_metrics,
    parse_condition,
    render_text,
)
from proactive.ingest_rules import customer_error as _customer_error
from proactive.ingest_rules import signal_error as _signal_error

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=30,
)

NAMES = st.from_regex(r"\A[a-z][a-z0-9_]{0,8}(\.[a-z0-9_]{1,8})?\Z")
PATTERNS = NAMES | NAMES.map(lambda n: n.split(".")[0] + ".*")
NUMERIC_METRICS = st.one_of(
    st.builds(lambda p, d: f"count({p}, {d})", PATTERNS, st.integers(1, 365)),
    st.builds(lambda p: f"days_since_last({p})", PATTERNS),
    st.builds(lambda p: f"trend({p})", PATTERNS),
    st.sampled_from(["days_since_signup", "risk_score"]),
)
numbers = st.integers(-1000, 1000) | st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
numeric_leaf = st.builds(
    lambda m, op, v: {"metric": m, "op": op, "value": v},
    NUMERIC_METRICS,
    st.sampled_from(["lt", "lte", "gt", "gte", "eq", "neq"]),
    numbers,
) | st.builds(
    lambda m, op, v: {"metric": m, "op": op, "value": v},
    NUMERIC_METRICS,
    st.sampled_from(["in", "not_in"]),
    st.lists(numbers, min_size=1, max_size=5),
)
attribute_leaf = st.builds(
    lambda k, op, v: {"metric": f"attribute.{k}", "op": op, "value": v},
    st.from_regex(r"\A[a-z][a-z0-9_]{0,10}\Z"),
    st.sampled_from(["eq", "neq"]),
    st.none() | st.booleans() | numbers | st.text(max_size=20),
) | st.builds(
    lambda k: {"metric": f"attribute.{k}", "op": "exists", "value": True}, st.from_regex(r"\A[a-z]{1,8}\Z")
)
leaves = numeric_leaf | attribute_leaf


def _trees(depth: int) -> st.SearchStrategy:
    if depth == 0:
        return leaves
    sub = _trees(depth - 1)
    return (
        leaves
        | st.builds(lambda xs: {"all": xs}, st.lists(sub, min_size=1, max_size=3))
        | st.builds(lambda xs: {"any": xs}, st.lists(sub, min_size=1, max_size=3))
        | st.builds(lambda x: {"not": x}, sub)
    )


valid_conditions = _trees(3)


def to_json(condition: Any) -> dict:
    if isinstance(condition, Leaf):
        return {"metric": str(condition.metric), "op": condition.op, "value": condition.value}
    if isinstance(condition, All):
        return {"all": [to_json(c) for c in condition.children]}
    if isinstance(condition, AnyOf):
        return {"any": [to_json(c) for c in condition.children]}
    assert isinstance(condition, Not)
    return {"not": to_json(condition.child)}


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_any_json_parses_or_raises_condition_error(data):
    try:
        parse_condition(data)
    except ConditionError as exc:
        assert exc.path.startswith("trigger")


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["metric", "op", "value", "all", "any", "not", "x"]), json_values))
def test_near_miss_objects_raise_only_condition_error(data):
    with contextlib.suppress(ConditionError):
        parse_condition(data)


@settings(max_examples=300, deadline=None)
@given(valid_conditions)
def test_valid_trees_round_trip_render_and_compile(data):
    tree = parse_condition(data)
    assert parse_condition(to_json(tree)) == tree
    assert render_text(tree)
    sql, params = compile_sql(tree, columns_for(condition_metrics(tree)))
    # Named placeholders only, each bound exactly once (no positional `%s` to miscount).
    assert "%s" not in sql
    assert set(re.findall(r"%\((\w+)\)s", sql)) == set(params)


NOW = datetime(2025, 1, 1, tzinfo=UTC)
LATEST = NOW + timedelta(hours=1)
timestamps = st.datetimes(
    min_value=datetime(1990, 1, 1),  # noqa: DTZ001 (hypothesis wants naive bounds + timezones=)
    max_value=datetime(2024, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
).map(lambda d: d.isoformat())
# Well-formed text: valid Unicode (no NUL, no lone surrogates, which PostgreSQL cannot store).
valid_chars = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))
good_signals = st.fixed_dictionaries(
    {
        "id": st.text(valid_chars, min_size=1, max_size=128),
        "customer": st.text(valid_chars, min_size=1, max_size=255),
        "name": st.from_regex(r"\A[a-z0-9_.:-]{1,100}\Z"),
        "timestamp": timestamps,
    },
    optional={
        "properties": st.dictionaries(
            st.text(valid_chars, max_size=8),
            st.integers(),
        )
    },
)


@settings(max_examples=400, deadline=None)
@given(
    json_values
    | st.dictionaries(st.sampled_from(["id", "customer", "name", "timestamp", "properties"]), json_values)
)
def test_signal_validator_classifies_anything(record):
    error, row = _signal_error(record, LATEST)
    assert (error is None) != (row is None)


@settings(max_examples=300, deadline=None)
@given(good_signals)
def test_signal_validator_accepts_every_well_formed_record(record):
    error, row = _signal_error(record, LATEST)
    assert error is None, error
    assert row[0] == record["id"]


@settings(max_examples=400, deadline=None)
@given(
    json_values
    | st.dictionaries(
        st.sampled_from(["external_id", "name", "email", "signed_up_at", "attributes"]), json_values
    )
)
def test_customer_validator_classifies_anything(record):
    error, clean = _customer_error(record)
    assert (error is None) != (clean is None)
