"""Trigger conditions: parsed and validated once into a tree, rendered as text, compiled to SQL.

    {"all": [...]} | {"any": [...]} | {"not": cond} | {"metric", "op", "value"}

A leaf compares one metric of `proactive.features.metrics` (the customer features). Compiled SQL
runs over a feature relation with one column per metric (`f.m0 ... f.mN`): numeric
metrics are double precision, `attribute.KEY` is jsonb. Every leaf is two-valued
(`COALESCE(..., false)`), so an undefined metric never matches a leaf and `not` of it
does match: "no session in 7 days" holds for a customer who never had one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from proactive.features.metrics import Kind, Metric, MetricError, parse_metric
from proactive.signal_patterns import is_prefix, pattern_prefix

NUMERIC_OPS = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">=", "eq": "=", "neq": "<>"}
OPS = (*NUMERIC_OPS, "in", "not_in", "exists")
MAX_DEPTH = 4
MAX_LEAVES = 50
MAX_LIST = 200
# Numbers in a condition stay within +-10^15 (integers exact in double precision); a JSON
# integer of any size would otherwise reach float() and overflow.
MAX_NUMBER = 10**15


class ConditionError(ValueError):
    """A bad condition; `path` names the bad part (`trigger.all[2].metric`)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class Leaf:
    metric: Metric
    op: str
    value: Any


@dataclass(frozen=True)
class All:
    children: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    children: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    child: Condition


Condition = Leaf | All | AnyOf | Not


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and -MAX_NUMBER <= value <= MAX_NUMBER
    )


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | bool) or _is_number(value)


def _parse_value(metric: Metric, op: str, value: Any, path: str) -> Any:
    if op == "exists":
        if value is None:
            return True
        if not isinstance(value, bool):
            raise ConditionError(path, "exists takes true or false (or no value)")
        return value
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise ConditionError(path, f"{op} needs a non-empty list")
        if len(value) > MAX_LIST:
            raise ConditionError(path, f"at most {MAX_LIST} values")
        check, what = (_is_number, "a number") if metric.is_numeric else (_is_scalar, "a JSON scalar")
        for i, item in enumerate(value):
            if not check(item):
                raise ConditionError(f"{path}[{i}]", f"{item!r} is not {what}")
        return list(value)
    if metric.is_numeric or op not in ("eq", "neq"):
        if not _is_number(value):
            raise ConditionError(
                path, f"{op} on {metric} needs a number between -1e15 and 1e15, got {value!r}"
            )
        return value
    if not _is_scalar(value):
        raise ConditionError(path, f"{value!r} is not a JSON scalar (string, number, true/false, null)")
    return value


def parse_condition(data: Any, path: str = "trigger", _depth: int = 0) -> Condition:
    """Validate condition JSON into a tree; raises ConditionError naming the bad part."""
    condition = _parse(data, path, _depth)
    leaves = sum(1 for _ in iter_leaves(condition))
    if _depth == 0 and leaves > MAX_LEAVES:
        raise ConditionError(path, f"at most {MAX_LEAVES} comparisons, got {leaves}")
    return condition


def _parse(data: Any, path: str, depth: int) -> Condition:
    if depth > MAX_DEPTH:
        raise ConditionError(path, f"nested deeper than {MAX_DEPTH} levels")
    if not isinstance(data, Mapping):
        raise ConditionError(path, "expected an object: {all: [...]}, {any: [...]}, {not: ...} or a leaf")
    keys = set(data)
    for group, cls in (("all", All), ("any", AnyOf)):
        if group in keys:
            if keys != {group}:
                raise ConditionError(path, f"{group!r} cannot be combined with {sorted(keys - {group})}")
            items = data[group]
            if not isinstance(items, list) or not items:
                raise ConditionError(f"{path}.{group}", "expected a non-empty list of conditions")
            return cls(tuple(_parse(item, f"{path}.{group}[{i}]", depth + 1) for i, item in enumerate(items)))
    if "not" in keys:
        if keys != {"not"}:
            raise ConditionError(path, f"'not' cannot be combined with {sorted(keys - {'not'})}")
        return Not(_parse(data["not"], f"{path}.not", depth + 1))
    unknown = keys - {"metric", "op", "value"}
    if unknown:
        raise ConditionError(path, f"unknown keys {sorted(unknown)}")
    if "metric" not in data:
        raise ConditionError(path, "a leaf needs 'metric', 'op' and 'value'")
    try:
        metric = parse_metric(data["metric"])
    except MetricError as exc:
        raise ConditionError(f"{path}.metric", str(exc)) from None
    op = data.get("op")
    if op not in OPS:
        raise ConditionError(f"{path}.op", f"{op!r} is not one of {', '.join(OPS)}")
    if "value" not in data and op != "exists":
        raise ConditionError(f"{path}.value", "missing")
    return Leaf(metric, op, _parse_value(metric, op, data.get("value"), f"{path}.value"))


def iter_leaves(condition: Condition):
    if isinstance(condition, Leaf):
        yield condition
    elif isinstance(condition, Not):
        yield from iter_leaves(condition.child)
    else:
        for child in condition.children:
            yield from iter_leaves(child)


def condition_metrics(condition: Condition) -> list[Metric]:
    """The distinct metrics a condition reads, in first-use order."""
    return list(dict.fromkeys(leaf.metric for leaf in iter_leaves(condition)))


# ---- readable text --------------------------------------------------------------------------

_CMP_WORDS = {
    "lt": "fewer than",
    "lte": "at most",
    "gt": "more than",
    "gte": "at least",
    "eq": "exactly",
    "neq": "not exactly",
}
_VALUE_WORDS = {
    "lt": "below",
    "lte": "at most",
    "gt": "above",
    "gte": "at least",
    "eq": "equal to",
    "neq": "not equal to",
}


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _pattern_words(pattern: str) -> str:
    return f"{pattern_prefix(pattern)}* signals" if is_prefix(pattern) else pattern.replace("_", " ")


def _days(n: int) -> str:
    return "day" if n == 1 else f"{n} days"


def _leaf_text(leaf: Leaf) -> str:
    m, op, v = leaf.metric, leaf.op, leaf.value
    if op == "exists":
        verb = "is set" if v else "is not set"
        subject = f"{m.key}" if m.kind is Kind.ATTRIBUTE else str(m)
        return f"{subject} {verb}"
    if op in ("in", "not_in"):
        items = ", ".join(json.dumps(x) if isinstance(x, str) else _num(x) for x in v)
        subject = str(m.key) if m.kind is Kind.ATTRIBUTE else str(m)
        return f"{subject} {'is' if op == 'in' else 'is not'} one of {items}"
    if m.kind is Kind.DAYS_SINCE_SIGNUP:
        return f"signed up {_CMP_WORDS[op].replace('fewer', 'less')} {_num(v)} days ago"
    if m.kind is Kind.COUNT:
        return (
            f"{_CMP_WORDS[op]} {_num(v)} {_pattern_words(m.pattern or '')} in the last {_days(m.days or 0)}"
        )
    if m.kind is Kind.COUNT_SINCE and m.since is not None:
        return (
            f"{_CMP_WORDS[op]} {_num(v)} {_pattern_words(m.pattern or '')} since {m.since:%d %b %Y %H:%M} UTC"
        )
    if m.kind is Kind.DAYS_SINCE_LAST:
        cmp = _CMP_WORDS[op].replace("fewer", "less")
        return f"last {_pattern_words(m.pattern or '')} {cmp} {_num(v)} days ago"
    if m.kind is Kind.TREND:
        return f"{_pattern_words(m.pattern or '')} trend {_VALUE_WORDS[op]} {_num(v)}"
    if m.kind is Kind.RISK_SCORE:
        return f"risk score {_VALUE_WORDS[op]} {_num(v)}"
    shown = json.dumps(v) if not _is_number(v) else _num(v)
    if op == "eq":
        return f"{m.key} is {shown}"
    if op == "neq":
        return f"{m.key} is not {shown}"
    return f"{m.key} {_VALUE_WORDS[op]} {shown}"


def _range_text(low: Leaf, high: Leaf) -> str | None:
    """`gte a` and `lte b` on one metric read better as a range: "signed up 3-21 days ago"."""
    a, b = _num(low.value), _num(high.value)
    m = low.metric
    if m.kind is Kind.DAYS_SINCE_SIGNUP:
        return f"signed up {a}-{b} days ago"
    if m.kind is Kind.COUNT:
        return f"{a}-{b} {_pattern_words(m.pattern or '')} in the last {_days(m.days or 0)}"
    if m.kind is Kind.DAYS_SINCE_LAST:
        return f"last {_pattern_words(m.pattern or '')} {a}-{b} days ago"
    if m.kind is Kind.RISK_SCORE:
        return f"risk score between {a} and {b}"
    return None


def render_text(condition: Condition, _nested: bool = False) -> str:
    """Readable text: "signed up 3-21 days ago AND fewer than 3 onboarding.step completed ..."."""
    if isinstance(condition, Leaf):
        return _leaf_text(condition)
    if isinstance(condition, Not):
        return f"NOT ({render_text(condition.child)})"
    parts: list[str] = []
    children: list[Condition | str] = list(condition.children)
    if isinstance(condition, All):
        used: set[int] = set()
        for i, low in enumerate(children):
            if i in used or not isinstance(low, Leaf) or low.op not in ("gt", "gte"):
                continue
            for j in range(i + 1, len(children)):
                high = children[j]
                if (
                    j not in used
                    and isinstance(high, Leaf)
                    and high.metric == low.metric
                    and low.op == "gte"
                    and high.op == "lte"
                ):
                    text = _range_text(low, high)
                    if text:
                        children[i] = text
                        used.add(j)
                        break
        children = [c for k, c in enumerate(children) if k not in used]
    for child in children:
        parts.append(child if isinstance(child, str) else render_text(child, True))
    joiner = " AND " if isinstance(condition, All) else " OR "
    text = joiner.join(parts)
    return f"({text})" if _nested and len(parts) > 1 else text


# ---- SQL ------------------------------------------------------------------------------------


def compile_sql(
    condition: Condition, columns: Mapping[Metric, str], name: str = "cond"
) -> tuple[str, dict[str, Any]]:
    """A boolean SQL expression over the feature columns (`columns[metric]` -> `f.m3`) and its
    named parameters (`proactive.sql`): `NAME_0`, `NAME_1`, ... Give each condition of one
    statement its own `name`; merge with the features' parameters by `merge_params`."""
    params: dict[str, Any] = {}

    def bind(value: Any) -> str:
        key = f"{name}_{len(params)}"
        params[key] = value
        return f"%({key})s"

    return _compile(condition, columns, bind), params


def _compile(condition: Condition, columns: Mapping[Metric, str], bind: Callable[[Any], str]) -> str:
    if isinstance(condition, Leaf):
        return _leaf_sql(condition, columns[condition.metric], bind)
    if isinstance(condition, Not):
        return f"(NOT {_compile(condition.child, columns, bind)})"
    parts = [_compile(child, columns, bind) for child in condition.children]
    joiner = " AND " if isinstance(condition, All) else " OR "
    return "(" + joiner.join(parts) + ")"


def _leaf_sql(leaf: Leaf, col: str, bind: Callable[[Any], str]) -> str:
    """One leaf over column `col`; `bind(value)` adds a parameter and returns its placeholder."""
    op, value = leaf.op, leaf.value
    if leaf.metric.is_numeric:
        if op == "exists":
            return f"({col} IS {'NOT ' if value else ''}NULL)"
        if op in ("in", "not_in"):
            marks = ", ".join(bind(float(x)) for x in value)
            neg = "NOT " if op == "not_in" else ""
            return f"COALESCE({col} {neg}IN ({marks}), false)"
        return f"COALESCE({col} {NUMERIC_OPS[op]} {bind(float(value))}, false)"
    # attribute.KEY: jsonb; a JSON null counts as not set.
    col = f"NULLIF({col}, 'null'::jsonb)"
    if op == "exists":
        test = f"({col} IS NOT NULL)"
        return test if value else f"(NOT {test})"
    if op in ("eq", "neq") and not _is_number(value):
        return f"COALESCE({col} {NUMERIC_OPS[op]} {bind(json.dumps(value))}::jsonb, false)"
    if op in ("in", "not_in"):
        marks = ", ".join(f"{bind(json.dumps(x))}::jsonb" for x in value)
        member = f"{col} IN ({marks})"
        numbers = [float(x) for x in value if _is_number(x)]
        if numbers:  # 1 and 1.0 are the same number in a JSON attribute
            member += f" OR {_jsonb_number(col)} IN ({', '.join(bind(x) for x in numbers)})"
        neg = "NOT " if op == "not_in" else ""
        return f"COALESCE({neg}({member}), false)"
    return f"COALESCE({_jsonb_number(col)} {NUMERIC_OPS[op]} {bind(float(value))}, false)"


def _jsonb_number(col: str) -> str:
    """A jsonb attribute as double precision, NULL (so the leaf is false) for anything else,
    including numbers double precision cannot hold (4,000 digits, 1e-400): a direct cast would
    raise NumericValueOutOfRange and fail the whole query. The nested CASE fixes the order."""
    num = f"({col})::numeric"
    return (
        f"(CASE WHEN jsonb_typeof({col}) = 'number' THEN CASE WHEN abs({num}) < 1e308"
        f" AND ({num} = 0 OR abs({num}) > 1e-307) THEN {num}::double precision END END)"
    )


def columns_for(metrics: Sequence[Metric], alias: str = "f") -> dict[Metric, str]:
    """Map metrics to the m0..mN columns of `features_query`, in the order passed to it."""
    return {metric: f"{alias}.m{i}" for i, metric in enumerate(metrics)}
