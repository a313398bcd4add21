"""The overview's aggregates, computed by every pipeline run and read by the page as one row.

At 100,000 customers each aggregate behind the tenant's home page (engagement, outreach per
week, the pooled treated-vs-holdout effect, every playbook's counts) scans all of the tenant's
outreach: 30-40 ms each on the 2-core machine, ~200 ms together before rendering. The pipeline
already runs on the tenant's scoring schedule, right after the outcomes sweep the effect needs,
so it stores them (`PageSnapshot`) and the page says how old they are. A page view finding no
snapshot, or one older than two scoring intervals (no worker running), computes it itself.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Any

from django.utils import timezone

from accounts.models import Tenant
from campaigns.models import Playbook
from campaigns.outcomes import OUTCOME_DAYS, sweep_get
from dashboard import effect_selectors, selectors
from dashboard.effect_selectors import Breakdown, EffectWeek
from proactive.models import PageSnapshot

OVERVIEW = "overview"
MIN_MAX_AGE = timedelta(minutes=10)
# Bump when the stored shape changes: a snapshot of another version is recomputed, not misread.
VERSION = 2


def overview_compute(*, tenant: Tenant, now: datetime) -> dict[str, Any]:
    """Every scan the overview needs, as JSON."""
    engagement = selectors.engagement_get(tenant=tenant, now=now)
    days, by_status = selectors.outreach_weekly(tenant=tenant, now=now)
    sweep = sweep_get(tenant=tenant)
    window_days = min(tenant.horizon_days, OUTCOME_DAYS)
    weeks = effect_selectors.effect_weeks(
        tenant=tenant, window_days=window_days, swept_at=sweep.swept_at if sweep else None, all_playbooks=True
    )
    ids = list(Playbook.objects.for_tenant(tenant).values_list("pk", flat=True))
    counts = effect_selectors.counts_by(tenant, "playbook_id", ids)
    return {
        "version": VERSION,
        "engagement": asdict(engagement),
        "weekly": {"days": [d.isoformat() for d in days], "by_status": by_status},
        "effect": {
            "window_days": window_days,
            "outcomes_as_of": sweep.swept_at.isoformat() if sweep else None,
            "weeks": [{**asdict(w), "week": w.week.isoformat()} for w in weeks],
        },
        "playbooks": {
            str(pk): {
                **asdict(b),
                "last_triggered": b.last_triggered.isoformat() if b.last_triggered else None,
            }
            for pk, b in counts.items()
        },
    }


def _store(tenant: Tenant) -> PageSnapshot:
    now = timezone.now()
    snapshot, _ = PageSnapshot.objects.for_tenant(tenant).update_or_create(
        tenant=tenant,
        name=OVERVIEW,
        defaults={"computed_at": now, "data": overview_compute(tenant=tenant, now=now)},
    )
    return snapshot


def overview_refresh(*, tenant: Tenant, as_of: datetime | None = None, run: Any = None) -> dict[str, Any]:
    """The pipeline step: recompute and store (as of now: outreach is what is stored now)."""
    data = _store(tenant).data
    return {"playbooks": len(data["playbooks"]), "weeks": len(data["effect"]["weeks"])}


def _max_age(tenant: Tenant) -> timedelta:
    return max(MIN_MAX_AGE, timedelta(minutes=2 * tenant.scoring_interval_minutes))


def overview_get(*, tenant: Tenant) -> tuple[dict[str, Any], datetime]:
    """The stored overview aggregates, or fresh ones when there are none recent enough."""
    now = timezone.now()
    snapshot = PageSnapshot.objects.for_tenant(tenant).filter(name=OVERVIEW).first()
    stale = snapshot is None or snapshot.computed_at < now - _max_age(tenant)
    if snapshot is None or stale or snapshot.data.get("version") != VERSION:
        snapshot = _store(tenant)
    return snapshot.data, snapshot.computed_at


def engagement_from(data: dict[str, Any]) -> selectors.Engagement:
    return selectors.Engagement(**data["engagement"])


def weekly_from(data: dict[str, Any]) -> tuple[list[date], dict[str, list[int]]]:
    return [date.fromisoformat(d) for d in data["weekly"]["days"]], data["weekly"]["by_status"]


def effect_weeks_from(data: dict[str, Any]) -> list[EffectWeek]:
    return [EffectWeek(**{**w, "week": date.fromisoformat(w["week"])}) for w in data["effect"]["weeks"]]


def breakdown_from(data: dict[str, Any], playbook_id: Any) -> Breakdown:
    """A playbook's counts; an empty one for a playbook created after the snapshot."""
    row = data["playbooks"].get(str(playbook_id))
    if row is None:
        return Breakdown()
    last = row["last_triggered"]
    return Breakdown(**{**row, "last_triggered": datetime.fromisoformat(last) if last else None})
