from __future__ import annotations

from django import template

from proactive import humanize

register = template.Library()


@register.filter
def pct(value: float | None, digits: int = 1) -> str:
    """0.0345 -> "3.5%"; None -> "—"."""
    if value is None or value == "":
        return "—"
    return f"{float(value) * 100:.{int(digits)}f}%"


@register.filter
def metric_words(name: str) -> str:
    """count(error.*, 7) -> "errors in the last 7 days" (proactive.humanize)."""
    return humanize.metric_words(str(name))


@register.simple_tag
def risk_points(score: float | None, contribution: float | None) -> str:
    """A log-odds contribution as '+12 points of risk' for a customer at `score`."""
    return humanize.risk_points_words(score, contribution)
