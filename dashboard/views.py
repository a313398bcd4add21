"""Tenant pages: overview, model, customers, pipeline runs and fatigue.

Views parse the request, call selectors (dashboard.selectors, dashboard.effect_selectors),
turn their output into chart specs (dashboard.charts) and render.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.tenancy import TenantRequest, tenant_view
from campaigns.budget import fatigue_get
from campaigns.models import Playbook
from dashboard import effect_selectors, playbook_views, selectors, snapshots
from dashboard.charts import chart, outreach_weekly_chart, series
from proactive import humanize
from proactive.models import PipelineRun, RiskModel
from proactive.scoring.selectors import customer_risk

TIMELINE_NAMES = 6


@tenant_view()
def overview(request: TenantRequest) -> HttpResponse:
    tenant = request.tenant
    data, computed_at = snapshots.overview_get(tenant=tenant)
    weeks = snapshots.effect_weeks_from(data)
    window_days = data["effect"]["window_days"]
    effect = playbook_views.effect_display(effect_selectors.effect_summary(weeks, window_days))
    playbooks = Playbook.objects.for_tenant(tenant).order_by("-enabled", "name")[:8]
    context = {
        "engagement": snapshots.engagement_from(data),
        "computed_at": computed_at,
        "outcomes_as_of": data["effect"]["outcomes_as_of"]
        and datetime.fromisoformat(data["effect"]["outcomes_as_of"]),
        "queue": selectors.queue_state_get(tenant=tenant),
        "latest_run": selectors.latest_run_get(tenant=tenant),
        "effect": effect,
        "weekly_chart": outreach_weekly_chart(*snapshots.weekly_from(data)),
        "effect_chart": playbook_views.effect_cumulative_chart(weeks),
        "playbooks": [effect_selectors.SourceRow(p, snapshots.breakdown_from(data, p.pk)) for p in playbooks],
    }
    return render(request, "proactive/overview.html", context)


def calibration_chart(model: RiskModel | None) -> dict[str, Any]:
    table = (model.metrics.get("calibration_table") if model else None) or []
    top = max([0.05, *(max(r["predicted"], r["observed"]) for r in table)])
    top = min(1.0, round(top * 1.1 + 0.005, 2))
    return chart(
        "xy",
        series=[
            series(
                "observed rate",
                [{"x": round(r["predicted"], 4), "y": round(r["observed"], 4)} for r in table],
                "blue",
                counts=[r["n"] for r in table],
            ),
            series(
                "perfect calibration",
                [{"x": 0, "y": 0}, {"x": top, "y": top}],
                "grey",
                dashed=True,
                points=False,
                reference=True,
            ),
        ],
        x="predicted probability (validation decile mean)",
        y="observed rate",
        x_format="percent",
        y_format="percent",
        x_min=0,
        x_max=top,
        y_min=0,
        y_max=top,
    )


def score_histogram_chart(dist: selectors.ScoreDistribution) -> dict[str, Any]:
    edges = dist.edges
    labels = [f"{edges[i] * 100:.1f}–{edges[i + 1] * 100:.1f}%" for i in range(len(dist.counts))]
    return chart(
        "bar",
        labels=labels,
        series=[series("customers", dist.counts, "blue")],
        x="current risk score",
        y="customers",
        y_format="int",
    )


def importance_chart(model: RiskModel | None, top: int = 15) -> dict[str, Any]:
    items = list((model.feature_importance if model else {}).items())
    items.sort(key=lambda kv: -kv[1])
    items = items[:top]
    return chart(
        "hbar",
        labels=[humanize.metric_words(name) for name, _ in items],
        series=[series("share of total gain", [round(v, 4) for _, v in items], "teal")],
        x="share of the model's total gain",
        y_format="percent",
    )


def versions_chart(models: list[RiskModel]) -> dict[str, Any]:
    trained = [m for m in models if m.metrics.get("auc") is not None]
    labels = [f"v{m.version}" for m in trained]
    return chart(
        "line",
        labels=labels,
        series=[
            series("AUC", [m.metrics.get("auc") for m in trained], "blue"),
            series("PR-AUC", [m.metrics.get("pr_auc") for m in trained], "orange"),
            series("Brier", [m.metrics.get("brier") for m in trained], "red", dashed=True),
            series("base rate", [m.metrics.get("base_rate") for m in trained], "grey", dashed=True),
        ],
        x="model version",
        y="metric on held-out rows",
        y_format="float",
        y_min=0,
    )


@tenant_view()
def model_detail(request: TenantRequest) -> HttpResponse:
    tenant = request.tenant
    now = timezone.now()
    models = selectors.model_list(tenant=tenant)
    active = next((m for m in models if m.status == RiskModel.Status.ACTIVE), None)
    latest = models[-1] if models else None
    dist = selectors.page_cached(
        tenant=tenant,
        name="scores",
        parts=(),
        compute=lambda: selectors.score_distribution_get(tenant=tenant),
    )
    drift = (
        selectors.drift_get(tenant=tenant, model=active, current_mean=dist.mean, now=now) if active else None
    )
    context = {
        "active": active,
        "latest": latest,
        "models": list(reversed(models)),
        "dist": dist,
        "drift": drift,
        "calibration_chart": calibration_chart(active),
        "score_chart": score_histogram_chart(dist),
        "importance_chart": importance_chart(active),
        "versions_chart": versions_chart(models),
    }
    return render(request, "proactive/model.html", context)


def _text_param(params: Any, name: str, max_length: int) -> str:
    """A free-text GET parameter, trimmed; NUL removed (PostgreSQL rejects it in text)."""
    return str(params.get(name, "")).replace("\x00", "")[:max_length].strip()


@tenant_view()
def customer_list(request: TenantRequest) -> HttpResponse:
    tenant = request.tenant
    params = request.GET
    band = params.get("band", "")
    ignored = []
    if band and band not in selectors.RISK_BANDS and band != selectors.UNSCORED_BAND:
        ignored.append("band")
        band = ""
    filters = selectors.CustomerFilters(
        query=_text_param(params, "q", 200),
        band=band,
        plan=_text_param(params, "plan", 100),
        pending=params.get("pending", "") == "1",
    )
    page = selectors.customer_page(
        tenant=tenant,
        filters=filters,
        after=params.get("after", "")[:80],
        before=params.get("before", "")[:80],
        limit=selectors.CUSTOMER_PAGE_SIZE,
    )
    plans = selectors.customer_plans(tenant=tenant)
    if filters.plan and filters.plan not in plans:
        plans = [*plans, filters.plan]
    base = {
        k: v
        for k, v in (
            ("q", filters.query),
            ("band", filters.band),
            ("plan", filters.plan),
            ("pending", "1" if filters.pending else ""),
        )
        if v
    }
    context = {
        "query": filters.query,
        "filters": filters,
        "bands": [(key, label) for key, (label, _, _) in selectors.RISK_BANDS.items()]
        + [(selectors.UNSCORED_BAND, "Not scored yet")],
        "plans": plans,
        "customers": page.rows,
        "page": page,
        "matching": selectors.customer_count(tenant=tenant, filters=filters),
        "ignored": ignored,
        "first_qs": urlencode(base),
        "next_qs": urlencode({**base, "after": page.next_cursor}) if page.next_cursor else "",
        "prev_qs": urlencode({**base, "before": page.prev_cursor}) if page.prev_cursor else "",
        "page_size": selectors.CUSTOMER_PAGE_SIZE,
    }
    template = "proactive/customer_list.html"
    if getattr(request, "htmx", False):
        template += "#results"
    return render(request, template, context)


def risk_chart(history: list) -> dict[str, Any]:
    return chart(
        "line",
        labels=[d.strftime("%d %b") for d, _, _ in history],
        series=[series("risk score", [round(s, 4) for _, s, _ in history], "red")],
        x="day",
        y="risk score",
        y_format="percent",
    )


def signal_timeline_chart(rows: list, since, today) -> dict[str, Any]:
    totals: dict[str, int] = defaultdict(int)
    for name, _, count in rows:
        totals[name] += count
    top = sorted(totals, key=lambda n: -totals[n])[:TIMELINE_NAMES]
    days = [since + timedelta(days=i) for i in range((today - since).days + 1)]
    index = {d: i for i, d in enumerate(days)}
    per_name = {n: [0] * len(days) for n in [*top, "other"]}
    for name, day, count in rows:
        key = name if name in top else "other"
        if day in index:
            per_name[key][index[day]] += count
    return chart(
        "bar",
        labels=[d.strftime("%d %b") for d in days],
        series=[series(n, v, stack="s") for n, v in per_name.items() if any(v)],
        x="day",
        y="signals",
        y_format="int",
        stacked=True,
    )


@tenant_view()
def customer_detail(request: TenantRequest, external_id: str) -> HttpResponse:
    tenant = request.tenant
    customer = selectors.customer_get(tenant=tenant, external_id=external_id)
    today = timezone.localdate()
    since = today - timedelta(days=selectors.CUSTOMER_HISTORY_DAYS)
    signal_days = selectors.customer_signal_days(tenant=tenant, customer=customer, since=since)
    # Scoring runs as of past times (backfills) score every customer stored now; the chart starts
    # when the customer did, not at a run that predates them.
    start = selectors.customer_start_day(tenant=tenant, customer=customer, signal_days=signal_days)
    history = selectors.customer_risk_history(tenant=tenant, customer=customer, since=max(since, start))
    outreach = selectors.customer_outreach(tenant=tenant, customer=customer)
    context = {
        "customer": customer,
        "risk": customer_risk(tenant, customer),
        "risk_chart": risk_chart(history),
        "timeline_chart": signal_timeline_chart(signal_days, since, today),
        "signals": selectors.customer_signals_recent(tenant=tenant, customer=customer),
        "outreach": outreach,
        "history_days": selectors.CUSTOMER_HISTORY_DAYS,
        "history_start": start if start > since else None,
        "contact_signals": set(tenant.contact_signals),
    }
    return render(request, "proactive/customer_detail.html", context)


@tenant_view()
def run_list(request: TenantRequest) -> HttpResponse:
    tenant = request.tenant
    runs = selectors.run_list(tenant=tenant)
    next_run = selectors.next_scoring_at(tenant=tenant, now=timezone.now())
    timed = [(r.started_at, r.finished_at - r.started_at) for r in reversed(runs) if r.finished_at]
    duration_chart = chart(
        "bar",
        labels=[timezone.localtime(started).strftime("%d %b %H:%M") for started, _ in timed],
        series=[series("seconds", [round(took.total_seconds(), 2) for _, took in timed], "blue")],
        x="run started",
        y="duration",
        y_format="seconds",
    )
    context = {
        "runs": runs,
        "any_running": any(r.status == PipelineRun.Status.RUNNING for r in runs),
        "duration_chart": duration_chart,
        "next_run": next_run,
    }
    template = "proactive/run_list.html"
    if getattr(request, "htmx", False):
        template += "#runs"
    return render(request, template, context)


@tenant_view()
def run_detail(request: TenantRequest, run_id: int) -> HttpResponse:
    tenant = request.tenant
    run = selectors.run_get(tenant=tenant, run_id=run_id)
    template = "proactive/run_detail.html"
    if getattr(request, "htmx", False):
        template += "#run-state"
    return render(request, template, {"run": run, "running": run.status == PipelineRun.Status.RUNNING})


@tenant_view()
def fatigue(request: TenantRequest) -> HttpResponse:
    tenant = request.tenant
    state = selectors.page_cached(
        tenant=tenant,
        name="fatigue",
        parts=(tenant.budget_max_messages, tenant.budget_per_days),
        compute=lambda: fatigue_get(
            tenant=tenant,
            now=timezone.now(),
            weeks=selectors.FATIGUE_WEEKS,
            suppressed_days=selectors.ENGAGEMENT_DAYS,
        ),
    )
    max_n = max([state.max_messages + 1, *state.window_counts, *state.weekly_counts])
    buckets = list(range(max_n + 1))
    weekly_total = sum(state.weekly_counts.values())
    window_chart = chart(
        "bar",
        labels=[str(b) for b in buckets],
        series=[
            series(
                "customers",
                [state.window_counts.get(b, 0) for b in buckets],
                "blue",
            )
        ],
        x=f"outreach counted against the budget, last {state.per_days} days (cap: {state.max_messages})",
        y="customers",
        y_format="int",
    )
    weekly_chart = chart(
        "bar",
        labels=[str(b) for b in buckets],
        series=[
            series(
                "share of customer-weeks",
                [
                    round(state.weekly_counts.get(b, 0) / weekly_total, 5) if weekly_total else 0
                    for b in buckets
                ],
                "teal",
                counts=[state.weekly_counts.get(b, 0) for b in buckets],
            )
        ],
        x=f"messages a customer received in one week (last {state.weeks} weeks)",
        y="share of customer-weeks",
        y_format="percent",
    )
    return render(
        request,
        "proactive/fatigue.html",
        {
            "state": state,
            "window_chart": window_chart,
            "weekly_chart": weekly_chart,
            "any_sent": any(k > 0 for k, n in state.window_counts.items() if n)
            or any(k > 0 for k, n in state.weekly_counts.items() if n),
        },
    )
