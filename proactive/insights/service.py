"""Store what discovery found (the pipeline's insights step) and read it back."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import numpy as np
from django.db import transaction

from accounts.models import Tenant
from proactive.features.compute import compute_features
from proactive.features.metrics import Kind, parse_metric
from proactive.insights.discovery import Discovery, discover
from proactive.insights.words import insight_sentence, leaves_of, pattern_kind
from proactive.models import Insight, InsightRun, PipelineRun
from proactive.rollups import rollups_fold
from proactive.scoring.training import Reusable


def matching_now(*, tenant: Tenant, as_of: datetime, conditions: list[dict]) -> list[int]:
    """How many customers each condition matches as of `as_of`: every customer of the tenant,
    one feature pass for all conditions (the same set a playbook's preview counts)."""
    if not conditions:
        return []
    metrics = list(dict.fromkeys(parse_metric(leaf["metric"]) for c in conditions for leaf in leaves_of(c)))
    frame = compute_features(tenant=tenant, as_of=as_of, metrics=metrics)
    position = {name: i for i, name in enumerate(frame.names)}
    counts = []
    for condition in conditions:
        match = np.ones(len(frame.customer_ids), dtype=bool)
        for leaf in leaves_of(condition):
            metric = parse_metric(leaf["metric"])
            if metric.kind is Kind.ATTRIBUTE:
                col = position.get(f"{leaf['metric']}={leaf['value']}")
                values = frame.values[:, col] if col is not None else np.zeros(len(match))
                match &= values == 1.0
                continue
            values = frame.values[:, position[str(metric)]]
            with np.errstate(invalid="ignore"):
                match &= {
                    "gte": values >= leaf["value"],
                    "lte": values <= leaf["value"],
                    "gt": values > leaf["value"],
                    "lt": values < leaf["value"],
                }[leaf["op"]]
        counts.append(int(match.sum()))
    return counts


def insights_refresh(
    *, tenant: Tenant, as_of: datetime, run: PipelineRun | None = None, reuse: Reusable | None = None
) -> dict[str, Any]:
    """Discover insights as of `as_of` and store them for this run (the pipeline's insights step);
    `reuse` is the same run's training snapshots.

    A retried run replaces what it stored before; other runs' insights stay as history. Pending
    rollup deltas are folded first, so the signal catalogue the candidates come from is complete."""
    rollups_fold(tenant_id=tenant.pk)
    found: Discovery = discover(tenant=tenant, as_of=as_of, reuse=reuse)
    started = time.perf_counter()
    counts = matching_now(tenant=tenant, as_of=as_of, conditions=[f.condition for f in found.results])
    found.stats.setdefault("seconds", {})["matching_now"] = round(time.perf_counter() - started, 3)
    with transaction.atomic():
        if run is not None:
            InsightRun.objects.for_tenant(tenant).filter(pipeline_run=run).delete()
        insight_run = InsightRun.objects.create(
            tenant=tenant,
            pipeline_run=run,
            as_of=as_of,
            status=InsightRun.Status.COMPUTED if found.ok else InsightRun.Status.INSUFFICIENT_DATA,
            reason=found.reason,
            target=found.target,
            horizon_days=found.horizon_days,
            base_rate=found.base_rate,
            stats=found.stats,
        )
        rows = []
        for rank, (f, now) in enumerate(zip(found.results, counts, strict=True), start=1):
            ev = f.evidence
            rows.append(
                Insight(
                    tenant=tenant,
                    insight_run=insight_run,
                    rank=rank,
                    kind=pattern_kind(f.condition),
                    condition=f.condition,
                    text=insight_sentence(
                        condition=f.condition,
                        target=found.target,
                        horizon_days=found.horizon_days,
                        rate=ev.rate,
                        base_rate=ev.base_rate,
                        lift=ev.lift,
                        ci95=ev.ci95,
                        customers_now=now,
                    ),
                    customers_now=now,
                    rate=ev.rate,
                    base_rate=ev.base_rate,
                    lift=ev.lift,
                    ci_low=ev.ci95[0],
                    ci_high=ev.ci95[1],
                    p_value=ev.p_value,
                    q_value=f.q_value,
                    rows=ev.rows,
                    reached=ev.reached,
                    train=f.train,
                    backtest=f.backtest,
                )
            )
        Insight.objects.bulk_create(rows)
    return {
        "status": insight_run.status,
        "insights": len(rows),
        "tried": found.stats.get("tried", 0),
        "validated": found.stats.get("validated", 0),
        "reason": found.reason,
        "seconds": found.stats.get("seconds", {}),
    }


def insight_run_latest(*, tenant: Tenant) -> InsightRun | None:
    return InsightRun.objects.for_tenant(tenant).order_by("-computed_at", "-id").first()


def insights_of(*, tenant: Tenant, insight_run: InsightRun | None) -> list[Insight]:
    if insight_run is None:
        return []
    return list(Insight.objects.for_tenant(tenant).filter(insight_run=insight_run).order_by("rank"))


def insight_get(*, tenant: Tenant, insight_id: Any) -> Insight:
    return Insight.objects.for_tenant(tenant).select_related("insight_run").get(pk=insight_id)
