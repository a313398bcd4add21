"""Insights in words a tenant admin reads, and the kind of pattern each one is."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from accounts.models import Tenant
from proactive.features.metrics import Kind, parse_metric

ERROR_WORDS = re.compile(r"error|fail|timeout|exception|crash|denied|invalid")
ONBOARDING_WORDS = re.compile(r"onboard|setup|set_up|activation|getting_started|tutorial|invite")


class PatternKind:
    ERRORS = "errors"
    ONBOARDING = "onboarding"
    DECLINE = "decline"
    GENERIC = "generic"


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _plural(n: Any, word: str) -> str:
    return f"{_num(n)} {word}" if float(n) == 1 else f"{_num(n)} {word}s"


def leaf_phrase(leaf: dict) -> str:
    """One leaf as the tail of "Customers ...": "with 3 or more `error.sync_failed` in 7 days"."""
    metric = parse_metric(leaf["metric"])
    op, value = leaf["op"], leaf["value"]
    pattern = f"`{metric.pattern}`" if metric.pattern else ""
    if metric.kind is Kind.COUNT:
        days = _plural(metric.days, "day")
        if op == "gte":
            return f"with {_num(value)} or more {pattern} in {days}"
        if op == "lt" and value == 1:
            return f"with no {pattern} in {days}"
        if op == "lt":
            return f"with fewer than {_num(value)} {pattern} in {days}"
    if metric.kind is Kind.DAYS_SINCE_LAST:
        if op == "gte":
            return f"whose last {pattern} was {_plural(value, 'day')} ago or longer"
        return f"with at least one {pattern} in the last {_plural(value, 'day')}"
    if metric.kind is Kind.TREND:
        share = float(value)
        if op == "lte":
            return f"whose {pattern} in the last 7 days fell to {share:.0%} or less of their usual week"
        return f"whose {pattern} in the last 7 days rose to {share:.1f}x or more of their usual week"
    if metric.kind is Kind.DAYS_SINCE_SIGNUP:
        return f"who signed up {'at least' if op == 'gte' else 'at most'} {_plural(value, 'day')} ago"
    if metric.kind is Kind.ATTRIBUTE:
        return f"whose `{metric.key}` is {value}"
    return f"with {leaf['metric']} {op} {_num(value)}"


def leaves_of(condition: dict) -> list[dict]:
    return list(condition["all"]) if "all" in condition else [condition]


def condition_phrase(condition: dict) -> str:
    leaves = leaves_of(condition)
    phrases: list[str] = []
    used: set[int] = set()
    for i, leaf in enumerate(leaves):
        if i in used:
            continue
        if leaf["metric"] == "days_since_signup" and leaf["op"] == "gte":
            high = next(
                (
                    j
                    for j in range(i + 1, len(leaves))
                    if leaves[j]["metric"] == leaf["metric"] and leaves[j]["op"] == "lte"
                ),
                None,
            )
            if high is not None:
                used.add(high)
                phrases.append(f"who signed up {_num(leaf['value'])}-{_num(leaves[high]['value'])} days ago")
                continue
        phrases.append(leaf_phrase(leaf))
    return " and ".join(phrases)


def target_verb(target: str) -> str:
    return "go quiet (no activity)" if target == Tenant.Target.INACTIVITY else "contact support"


def insight_sentence(
    *,
    condition: dict,
    target: str,
    horizon_days: int,
    rate: float,
    base_rate: float,
    lift: float,
    ci95: Sequence[float],
    customers_now: int,
) -> str:
    """ "Customers with 3 or more `error.sync_failed` in 7 days contact support within 14 days 4.1x
    as often (3.2x-5.0x): 23% vs 5.6%. 312 customers match today." """
    matches = "1 customer matches" if customers_now == 1 else f"{customers_now:,} customers match"
    return (
        f"Customers {condition_phrase(condition)} {target_verb(target)} within {horizon_days} days "
        f"{lift:.1f}x as often ({ci95[0]:.1f}x-{ci95[1]:.1f}x): {_pct(rate)} vs {_pct(base_rate)}. "
        f"{matches} today."
    )


def _pct(value: float) -> str:
    return f"{value:.0%}" if value >= 0.1 else f"{value:.1%}"


def pattern_kind(condition: dict) -> str:
    """errors (troubleshooting), onboarding (setup help), decline (re-engagement) or generic."""
    leaves = leaves_of(condition)
    kinds: list[str] = []
    for leaf in leaves:
        metric = parse_metric(leaf["metric"])
        text = (metric.pattern or "").lower()
        rising = leaf["op"] in ("gte", "gt")
        if (
            metric.kind is Kind.COUNT
            and rising
            and ERROR_WORDS.search(text)
            or metric.kind is Kind.TREND
            and rising
            and ERROR_WORDS.search(text)
            or metric.kind is Kind.DAYS_SINCE_LAST
            and not rising
            and ERROR_WORDS.search(text)
        ):
            kinds.append(PatternKind.ERRORS)
        elif ONBOARDING_WORDS.search(text) and (
            (metric.kind is Kind.COUNT and not rising) or (metric.kind is Kind.DAYS_SINCE_LAST and rising)
        ):
            kinds.append(PatternKind.ONBOARDING)
        elif (
            metric.kind is Kind.TREND
            and not rising
            or metric.kind is Kind.DAYS_SINCE_LAST
            and rising
            or metric.kind is Kind.COUNT
            and not rising
            and not ERROR_WORDS.search(text)
        ):
            kinds.append(PatternKind.DECLINE)
    for kind in (PatternKind.ERRORS, PatternKind.ONBOARDING, PatternKind.DECLINE):
        if kind in kinds:
            return kind
    return PatternKind.GENERIC
