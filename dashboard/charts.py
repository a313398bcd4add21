"""Chart specs for static/js/charts.js: plain dicts rendered into the page with json_script.

Pages build specs from selector output; the browser maps them to Chart.js. Keeping the
spec small and declarative means a page's numbers can be asserted in tests without a browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def series(label: str, data: Sequence[Any], color: str | None = None, **options: Any) -> dict[str, Any]:
    """One dataset. Options: reference=True (a guide line that alone does not make a chart),
    dashed, stack, type ("line" on a bar chart), band ("lower"/"upper"), counts (shown beside
    the value in the tooltip), points=False, line=False (xy)."""
    return {"label": label, "data": list(data), "color": color, **options}


def _has_value(value: Any, zero_counts: bool) -> bool:
    if isinstance(value, dict):
        return value.get("y") is not None
    return value is not None and (zero_counts or value != 0)


def chart(
    kind: str,
    *,
    series: Sequence[dict[str, Any]],
    labels: Sequence[Any] | None = None,
    x: str = "",
    y: str = "",
    **options: Any,
) -> dict[str, Any]:
    """kind: line, bar, hbar (horizontal bars) or xy (numeric x and y, data as {x, y} points).

    Options: y_format/x_format ("percent", "int", "count", "float", "seconds"), stacked,
    y_min/y_max, x_min/x_max, y_suggested_min/y_suggested_max (a range that grows to fit the data).
    `empty` is true when no series holds a value, so templates can show the empty state instead.
    """
    has_data = any(
        # Bars of nothing but zeros are an empty chart; a line at zero is a value (no effect).
        _has_value(v, kind in ("line", "xy"))
        for s in series
        if not s.get("band") and not s.get("reference")
        for v in s["data"]
    )
    spec: dict[str, Any] = {"kind": kind, "series": list(series), "x": x, "y": y, "empty": not has_data}
    if labels is not None:
        spec["labels"] = [str(label) for label in labels]
    spec.update(options)
    return spec


STATUS_COLORS = {
    "sent": "blue",
    "pending_review": "purple",
    "held_out": "grey",
    "suppressed": "orange",
    "rejected": "red",
    "snoozed": "teal",
    "expired": "brown",
}
STATUS_LABELS = {
    "sent": "Sent",
    "pending_review": "Pending review",
    "held_out": "Held out",
    "suppressed": "Suppressed",
    "rejected": "Rejected",
    "snoozed": "Snoozed",
    "expired": "Expired",
}


def outreach_weekly_chart(days: list, by_status: dict[str, list[int]]) -> dict[str, Any]:
    present = [s for s, values in by_status.items() if any(values)]
    return chart(
        "bar",
        labels=[d.strftime("%d %b") for d in days],
        series=[series(STATUS_LABELS[s], by_status[s], STATUS_COLORS[s], stack="status") for s in present],
        x="week starting",
        y="outreach",
        y_format="int",
        stacked=True,
    )
