"""Playbook and campaign pages: what fired, what happened to it, and whether it helped."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.cache import cache
from django.db import connection
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.rate_limits import BACKTEST_BUDGET, tenant_key
from accounts.tenancy import TenantRequest, tenant_view
from campaigns.outcomes import OUTCOME_DAYS, sweep_get
from campaigns.playbooks import playbook_backtest
from dashboard import effect_selectors
from dashboard.charts import chart, outreach_weekly_chart, series
from dashboard.effect_selectors import EffectWeek
from dashboard.selectors import next_scoring_at, outreach_weekly

BACKTEST_DAYS = 14
BACKTEST_CACHE_SECONDS = 3600
MAX_WINDOW_DAYS = OUTCOME_DAYS  # outcomes are recorded for windows up to this long


def _pct(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    text = f"{value * 100:.{digits}f}"
    return f"{text.lstrip('-') if float(text) == 0 else text}%"  # never "-0%"


def interval_words(ci: list[float] | None) -> str:
    """A 95% interval of a relative reduction, read in the direction it points: "between 10%
    and 40% fewer", "between 5% and 20% more", or "from 30% more to 10% fewer" across zero."""
    if not ci:
        return "not available"
    lo, hi = ci
    if lo >= 0:
        return f"between {_pct(lo, 0)} and {_pct(hi, 0)} fewer"
    if hi <= 0:
        return f"between {_pct(-hi, 0)} and {_pct(-lo, 0)} more"
    return f"from {_pct(-lo, 0)} more to {_pct(hi, 0)} fewer"


def _direction(ci: list[float] | None) -> str | None:
    """'fewer' or 'more' only when the interval excludes zero; None otherwise."""
    if not ci:
        return None
    if ci[0] > 0:
        return "fewer"
    if ci[1] < 0:
        return "more"
    return None


def _headline(reduction: float | None, ci: list[float] | None) -> str:
    direction = _direction(ci)
    if reduction is None:
        return "—"
    if direction is None:
        return "No clear effect yet"
    return f"{_pct(abs(reduction), 0)} {direction} contacts"


def effect_display(effect: dict[str, Any]) -> dict[str, Any]:
    """The effectiveness payload plus the sentences a page shows for it: a direction only when
    the interval excludes zero, the interval worded in that direction."""
    ci = effect.get("ci95")
    reduction = effect.get("relative_reduction")
    reached = effect.get("reached") or {}
    on_reached = effect.get("effect_on_reached")
    return {
        **effect,
        "relative_reduction_pct": _pct(reduction, 0),
        "direction": _direction(ci),
        "change_text": _headline(reduction, ci),
        "ci_text": interval_words(ci),
        "treated_rate_pct": _pct(effect["treated"]["rate"]),
        "holdout_rate_pct": _pct(effect["holdout"]["rate"]),
        "harmful": _direction(ci) == "more",
        "significant": _direction(ci) == "fewer",
        "reached_customers": reached.get("customers", 0),
        "reached_share_pct": _pct(reached.get("share"), 0),
        "on_reached": {
            **on_reached,
            "direction": _direction(on_reached["ci95"]),
            "change_text": _headline(on_reached["relative_reduction"], on_reached["ci95"]),
            "ci_text": interval_words(on_reached["ci95"]),
        }
        if on_reached
        else None,
    }


def effect_rates_chart(weeks: list[EffectWeek]) -> dict[str, Any]:
    return chart(
        "line",
        labels=[w.week.strftime("%d %b") for w in weeks],
        series=[
            series(
                "assigned (incl. not delivered)",
                [w.treated_rate for w in weeks],
                "blue",
                counts=[f"{w.treated_contacted}/{w.treated}" for w in weeks],
            ),
            series(
                "held out",
                [w.holdout_rate for w in weeks],
                "grey",
                dashed=True,
                counts=[f"{w.holdout_contacted}/{w.holdout}" for w in weeks],
            ),
        ],
        x="week the outreach fired",
        y="contacted support within the window",
        y_format="percent",
    )


def _clipped(value: float | None, bound: float = 1.0) -> float | None:
    return None if value is None else max(-bound, min(bound, value))


def effect_cumulative_chart(weeks: list[EffectWeek]) -> dict[str, Any]:
    points = effect_selectors.cumulative_effect(weeks)
    lows = [_clipped(p["ci95"][0]) if p["ci95"] else None for p in points]
    highs = [_clipped(p["ci95"][1]) if p["ci95"] else None for p in points]
    effects = [p["relative_reduction"] for p in points]
    return chart(
        "line",
        labels=[p["week"].strftime("%d %b") for p in points],
        series=[
            series("95% interval (low)", lows, "blue", band="lower"),
            series("95% interval", highs, "blue", band="upper"),
            series(
                "contacts prevented (pooled so far)",
                [_clipped(e) for e in effects],
                "blue",
                # A point beyond the axis is drawn at its edge; the tooltip keeps the true value.
                counts=[f"{e * 100:+.0f}%" if e is not None else "" for e in effects],
            ),
            series("no effect", [0 for _ in points], "grey", dashed=True, points=False, reference=True),
        ],
        x="outreach fired up to the week of",
        y="fewer contacts (clipped at ±100%)",
        y_format="percent",
        # Early intervals run to -500%: clipped, the narrowing that matters stays readable.
        y_min=-1,
        y_max=1,
    )


def funnel_chart(engagement: dict[str, int]) -> dict[str, Any]:
    steps = [
        ("sent", "Sent"),
        ("seen", "Seen"),
        ("clicked", "Clicked"),
        ("helpful", "Rated helpful"),
        ("not_helpful", "Rated not helpful"),
        ("dismissed", "Dismissed"),
    ]
    sent = engagement.get("sent") or 0
    return chart(
        "hbar",
        labels=[label for _, label in steps],
        series=[
            series(
                "messages",
                [engagement.get(key, 0) for key, _ in steps],
                "teal",
                counts=[
                    _pct(engagement.get(key, 0) / sent if sent else None, 0) + " of sent" for key, _ in steps
                ],
            )
        ],
        x="messages",
        y_format="int",
    )


def _window_days(request: TenantRequest) -> int:
    tenant = request.tenant
    try:
        value = int(request.GET.get("window_days", tenant.horizon_days))
    except ValueError:
        value = tenant.horizon_days
    return min(max(value, 1), MAX_WINDOW_DAYS)


@tenant_view()
def playbook_list(request: TenantRequest) -> HttpResponse:
    tenant = request.tenant
    return render(
        request,
        "campaigns/playbook_list.html",
        {"rows": effect_selectors.playbook_list(tenant=tenant)},
    )


def _source_context(request: TenantRequest, **source: Any) -> dict[str, Any]:
    tenant = request.tenant
    now = timezone.now()
    window_days = _window_days(request)
    sweep = sweep_get(tenant=tenant)
    swept_at = sweep.swept_at if sweep else None
    effect = effect_display(
        effect_selectors.source_effect(tenant=tenant, window_days=window_days, swept_at=swept_at, **source)
    )
    weeks = effect_selectors.effect_weeks(tenant=tenant, window_days=window_days, swept_at=swept_at, **source)
    breakdown = effect_selectors.breakdown_get(tenant=tenant, **source)
    return {
        "source_kind": "playbook" if "playbook" in source else "campaign",
        "window_days": window_days,
        "window_choices": sorted({7, 14, 28, min(tenant.horizon_days, MAX_WINDOW_DAYS), window_days}),
        "outcomes_as_of": swept_at,
        "effect": effect,
        "breakdown": breakdown,
        "rates_chart": effect_rates_chart(weeks),
        "cumulative_chart": effect_cumulative_chart(weeks),
        "funnel_chart": funnel_chart(effect["engagement"]),
        "weekly_chart": _weekly_chart(tenant, now, source),
    }


def _weekly_chart(tenant: Any, now: datetime, source: dict[str, Any]) -> dict[str, Any]:
    days, by_status = outreach_weekly(tenant=tenant, now=now, **source)
    return outreach_weekly_chart(days, by_status)


@tenant_view()
def playbook_detail(request: TenantRequest, playbook_id: Any) -> HttpResponse:
    tenant = request.tenant
    playbook = effect_selectors.playbook_get(tenant=tenant, playbook_id=playbook_id)
    context = _source_context(request, playbook=playbook)
    context.update(
        playbook=playbook,
        condition=effect_selectors.condition_text(playbook.trigger),
        next_run=next_scoring_at(tenant=tenant, now=timezone.now()),
        backtest_days=BACKTEST_DAYS,
    )
    return render(request, "campaigns/playbook_detail.html", context)


class BacktestThrottled(Exception):
    def __init__(self, wait: int) -> None:
        super().__init__(f"retry in {wait} s")
        self.wait = wait


def backtest_cached(*, tenant: Any, playbook: Any, window_days: int) -> dict[str, Any]:
    """The backtest recomputes features for each of the last days: cached per trigger and day.

    Only a computed backtest counts against the tenant's backtest budget (shared with the API);
    BacktestThrottled when it is spent for this minute."""
    key = (
        f"pages:{connection.settings_dict['NAME']}:{tenant.pk}:backtest:{playbook.pk}:{playbook.updated_at.timestamp()}:"
        f"{window_days}:{timezone.now():%Y-%m-%d}"
    )
    result = cache.get(key)
    if result is None:
        wait = BACKTEST_BUDGET.wait(tenant_key(tenant.pk))
        if wait:
            raise BacktestThrottled(wait)
        result = playbook_backtest(
            tenant=tenant, trigger=playbook.trigger, days=BACKTEST_DAYS, window_days=window_days
        )
        cache.set(key, result, BACKTEST_CACHE_SECONDS)
    return result


@tenant_view()
def playbook_backtest_fragment(request: TenantRequest, playbook_id: Any) -> HttpResponse:
    tenant = request.tenant
    playbook = effect_selectors.playbook_get(tenant=tenant, playbook_id=playbook_id)
    try:
        result = backtest_cached(tenant=tenant, playbook=playbook, window_days=_window_days(request))
    except BacktestThrottled as exc:
        # HTMX swaps only 2xx answers, so the fragment it asked for carries the message with a 200;
        # a plain request (the link without JavaScript) gets the 429 itself.
        status = 200 if getattr(request, "htmx", False) else 429
        response = render(request, "campaigns/playbook_backtest.html", {"throttled": exc.wait}, status=status)
        response["Retry-After"] = str(exc.wait)
        return response
    days = result["days"]
    labels = [datetime.fromisoformat(d["as_of"]).strftime("%d %b") for d in days]
    backtest_chart = chart(
        "bar",
        labels=labels,
        series=[series("customers matched", [d["matched"] for d in days], "blue")],
        x="as of",
        y="customers matched",
        y_format="int",
    )
    precision_chart = chart(
        "line",
        labels=labels,
        series=[
            series(
                "precision of the trigger", [d["precision"] if d["complete"] else None for d in days], "red"
            ),
            series("base rate (all customers)", [d["base_rate"] for d in days], "grey", dashed=True),
        ],
        x="as of (window not yet elapsed for the last days)",
        y="contacted support within the window",
        y_format="percent",
    )
    return render(
        request,
        "campaigns/playbook_backtest.html",
        {
            "result": result,
            "matched_chart": backtest_chart,
            "precision_chart": precision_chart,
            "lift": (result["precision"] / result["base_rate"])
            if result["precision"] is not None and result["base_rate"]
            else None,
        },
    )


@tenant_view()
def campaign_list(request: TenantRequest) -> HttpResponse:
    tenant = request.tenant
    return render(
        request,
        "campaigns/campaign_list.html",
        {"rows": effect_selectors.campaign_list(tenant=tenant)},
    )


@tenant_view()
def campaign_detail(request: TenantRequest, campaign_id: Any) -> HttpResponse:
    tenant = request.tenant
    campaign = effect_selectors.campaign_get(tenant=tenant, campaign_id=campaign_id)
    context = _source_context(request, campaign=campaign)
    context.update(campaign=campaign, condition=effect_selectors.condition_text(campaign.audience))
    return render(request, "campaigns/campaign_detail.html", context)
