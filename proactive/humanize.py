"""Metric names and risk contributions in words, one home for every page that shows them.

`count(error.*, 7)` reads "errors in the last 7 days"; a model contribution (log-odds) reads
"+12 points of risk": how much lower the customer's probability would be without it.
"""

from __future__ import annotations

import math

from proactive.features.attributes import parse_attribute
from proactive.features.history import parse_history
from proactive.features.metrics import Kind, Metric, MetricError, parse_metric
from proactive.features.values import parse_value

# Words that read wrong with a plural "s": they get "events" instead.
_NO_PLURAL_ENDINGS = ("s", "ed", "ing")


def _words(segment: str) -> str:
    return segment.replace("_", " ").replace("-", " ").strip()


def _things(metric: Metric) -> str:
    """The signals a pattern matches, as a plural noun phrase."""
    pattern = metric.pattern or "*"
    if pattern == "*":
        return "signals of any kind"
    if metric.is_prefix:
        word = _words(metric.prefix.rstrip(".:").split(".")[-1].split(":")[-1])
        if not word:
            return f"{pattern} signals"
        if " " in word or word.endswith(_NO_PLURAL_ENDINGS):
            return f"{word} events"
        return f"{word}s"
    return f"“{pattern}” events"


def _thing(metric: Metric) -> str:
    pattern = metric.pattern or "*"
    if pattern == "*":
        return "signal of any kind"
    if metric.is_prefix:
        word = _words(metric.prefix.rstrip(".:").split(".")[-1])
        return word or f"{pattern} signal"
    return f"“{pattern}” event"


def _stream(pattern: str, plural: bool = True) -> str:
    """A history pattern (names or prefixes joined by `|`) as a noun phrase."""
    parts = [Metric(Kind.COUNT, pattern=p) for p in pattern.split("|")]
    return " or ".join(_things(m) if plural else _thing(m) for m in parts)


def _history_words(name: str) -> str | None:
    """The risk model's history features (`proactive.features.history`) and the BG/NBD column."""
    if name.startswith("bgnbd(") and name.endswith(")"):
        stream, _, horizon = name[len("bgnbd(") : -1].rpartition(", ")
        return f"chance of {_stream(stream)} within {horizon} days by recency and frequency (BG/NBD)"
    feature = parse_history(name)
    if feature is None:
        return None
    things, thing = _stream(feature.pattern), _stream(feature.pattern, plural=False)
    if feature.kind == "active_days":
        span = "in all" if feature.a is None else f"in the last {feature.a} days"
        return f"days with {things} {span}"
    words = {
        "days_since_first": f"days since the first {thing}",
        "days_since_active": f"days since the last day with {things}",
        "gap_mean": f"usual days between days with {things}",
        "gap_std": f"variation of the days between days with {things}",
        "recency_ratio": f"days since the last {thing}, in usual gaps",
        "per_day": f"share of days with {things} since the first",
        "active_trend": f"days with {things}: the last {feature.a} days against the last {feature.b}",
    }
    return words.get(feature.kind)


def metric_words(name: str) -> str:
    """A metric expression in plain words; an unparsable one is returned as it is."""
    history = _history_words(name)
    if history is not None:
        return history
    value = parse_value(name)
    if value is not None:
        what = f"{_words(value.key)} of “{value.signal}” events"
        span = "in all" if value.days is None else f"over the last {value.days} days"
        return f"{'total' if value.kind == 'value_sum' else 'average'} {what} {span}"
    attribute = parse_attribute(name)
    if attribute is not None and attribute.value is not None:  # a one-hot column: 1 = yes
        return f"{_words(attribute.key)} is “{attribute.value}” (customer attribute)"
    try:
        metric = parse_metric(name)
    except MetricError:
        return name
    if metric.kind is Kind.COUNT:
        span = "the last day" if metric.days == 1 else f"the last {metric.days} days"
        return f"{_things(metric)} in {span}"
    if metric.kind is Kind.COUNT_SINCE and metric.since is not None:
        return f"{_things(metric)} since {metric.since:%Y-%m-%d %H:%M} UTC"
    if metric.kind is Kind.DAYS_SINCE_LAST:
        return f"days since the last {_thing(metric)}"
    if metric.kind is Kind.TREND:
        return f"trend of {_things(metric)} (last 7 days vs the 4 weeks before)"
    if metric.kind is Kind.DAYS_SINCE_SIGNUP:
        return "days since sign-up"
    if metric.kind is Kind.RISK_SCORE:
        return "risk score"
    return f"{_words(metric.key or '')} (customer attribute)"


def risk_points(score: float | None, contribution: float | None) -> int | None:
    """Percentage points the customer's risk would drop without this contribution (log-odds),
    holding the rest: 100 * (p - sigmoid(logit(p) - c))."""
    if score is None or contribution is None:
        return None
    p = min(max(float(score), 1e-6), 1 - 1e-6)
    without = 1 / (1 + math.exp(-(math.log(p / (1 - p)) - float(contribution))))
    return round(100 * (p - without))


def risk_points_words(score: float | None, contribution: float | None) -> str:
    """'+12 points of risk' ('under 1 point' for tiny ones)."""
    points = risk_points(score, contribution)
    if points is None:
        return "—"
    if points == 0:
        return "under 1 point of risk" if (contribution or 0) >= 0 else "lowers risk by under 1 point"
    sign = "+" if points > 0 else "−"
    unit = "point" if abs(points) == 1 else "points"
    return f"{sign}{abs(points)} {unit} of risk"
