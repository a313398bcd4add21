"""Reads behind the playbook and campaign pages (counts, reasons, warnings).

Statistics (treated vs holdout, intervals, funnel, backtest) come from
campaigns.effectiveness; this module only counts outreach and arranges results for pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, Max, Q
from django.http import Http404

from accounts.models import Tenant
from campaigns.conditions import ConditionError, parse_condition, render_text
from campaigns.effectiveness import (
    arms_payload,
    engagement_counts,
    mantel_haenszel_stats,
    reached_payload,
    risk_ratio_stats,
)
from campaigns.models import Campaign, Outreach, Playbook
from campaigns.outcomes import outcome_counts

REASONS_SHOWN = 8
EFFECT_WEEKS = 26
# Agents rejecting more than this share of what a playbook proposes (with enough reviews) is a warning.
REJECT_WARN_SHARE = 0.5
REJECT_WARN_MIN = 10


@dataclass
class Breakdown:
    """What happened to the outreach of one source (or all of them)."""

    by_status: dict[str, int] = field(default_factory=dict)
    total: int = 0
    reviewed_sent: int = 0
    last_triggered: datetime | None = None
    suppressed_reasons: list[tuple[str, int]] = field(default_factory=list)
    reject_reasons: list[tuple[str, int]] = field(default_factory=list)

    def count(self, status: str) -> int:
        return self.by_status.get(status, 0)

    @property
    def sent(self) -> int:
        return self.count(Outreach.Status.SENT)

    @property
    def held_out(self) -> int:
        return self.count(Outreach.Status.HELD_OUT)

    @property
    def suppressed(self) -> int:
        return self.count(Outreach.Status.SUPPRESSED)

    @property
    def rejected(self) -> int:
        return self.count(Outreach.Status.REJECTED)

    @property
    def pending(self) -> int:
        return self.count(Outreach.Status.PENDING_REVIEW) + self.count(Outreach.Status.SNOOZED)

    @property
    def expired(self) -> int:
        return self.count(Outreach.Status.EXPIRED)

    @property
    def reviewed(self) -> int:
        """Decided by an agent: rejected, or sent after an agent reviewed it."""
        return self.rejected + self.reviewed_sent

    @property
    def reject_share(self) -> float | None:
        return self.rejected / self.reviewed if self.reviewed else None

    @property
    def rejects_most(self) -> bool:
        share = self.reject_share
        return bool(share is not None and self.reviewed >= REJECT_WARN_MIN and share > REJECT_WARN_SHARE)


def _source_filter(playbook: Playbook | None, campaign: Campaign | None) -> dict[str, Any]:
    if playbook is not None:
        return {"playbook": playbook}
    if campaign is not None:
        return {"campaign": campaign}
    return {}


def breakdown_get(
    *, tenant: Tenant, playbook: Playbook | None = None, campaign: Campaign | None = None
) -> Breakdown:
    """Counts by status plus the most common suppression and rejection reasons (three queries)."""
    base = Outreach.objects.for_tenant(tenant).filter(**_source_filter(playbook, campaign))
    result = Breakdown()
    rows = base.values("status").annotate(
        n=Count("id"), last=Max("triggered_at"), reviewed=Count("id", filter=Q(reviewed_at__isnull=False))
    )
    for row in rows.order_by():
        result.by_status[row["status"]] = row["n"]
        result.total += row["n"]
        if row["status"] == Outreach.Status.SENT:
            result.reviewed_sent = row["reviewed"]
        if result.last_triggered is None or row["last"] > result.last_triggered:
            result.last_triggered = row["last"]
    reasons = (
        base.filter(status__in=[Outreach.Status.SUPPRESSED, Outreach.Status.REJECTED])
        .values("status", "suppressed_reason", "reject_reason")
        .annotate(n=Count("id"))
        .order_by("-n")
    )
    for r in reasons:
        if r["status"] == Outreach.Status.SUPPRESSED:
            result.suppressed_reasons.append((r["suppressed_reason"] or "no reason recorded", r["n"]))
        else:
            result.reject_reasons.append((r["reject_reason"] or "no reason given", r["n"]))
    result.suppressed_reasons = _merge(result.suppressed_reasons)[:REASONS_SHOWN]
    result.reject_reasons = _merge(result.reject_reasons)[:REASONS_SHOWN]
    return result


def _merge(pairs: list[tuple[str, int]]) -> list[tuple[str, int]]:
    merged: dict[str, int] = {}
    for reason, n in pairs:
        merged[reason] = merged.get(reason, 0) + n
    return sorted(merged.items(), key=lambda kv: -kv[1])


def condition_text(data: Any) -> str:
    """The trigger or audience as a sentence; an invalid one says so instead of failing the page."""
    try:
        return render_text(parse_condition(data))
    except ConditionError as exc:
        return f"invalid condition: {exc}"


@dataclass
class SourceRow:
    source: Playbook | Campaign
    breakdown: Breakdown

    @property
    def condition(self) -> str:
        data = self.source.trigger if isinstance(self.source, Playbook) else self.source.audience
        return condition_text(data)


def counts_by(tenant: Tenant, column: str, ids: list[Any]) -> dict[Any, Breakdown]:
    counts: dict[Any, Breakdown] = {i: Breakdown() for i in ids}
    if not ids:
        return counts
    rows = (
        Outreach.objects.for_tenant(tenant)
        .filter(**{f"{column}__in": ids})
        .values(column, "status")
        .annotate(
            n=Count("id"), last=Max("triggered_at"), reviewed=Count("id", filter=Q(reviewed_at__isnull=False))
        )
        .order_by()
    )
    for row in rows:
        b = counts[row[column]]
        b.by_status[row["status"]] = row["n"]
        b.total += row["n"]
        if row["status"] == Outreach.Status.SENT:
            b.reviewed_sent = row["reviewed"]
        if b.last_triggered is None or row["last"] > b.last_triggered:
            b.last_triggered = row["last"]
    return counts


def playbook_list(*, tenant: Tenant, limit: int | None = None) -> list[SourceRow]:
    """Every playbook with its outreach counts by status (two queries)."""
    playbooks = list(Playbook.objects.for_tenant(tenant).order_by("-enabled", "name")[:limit])
    counts = counts_by(tenant, "playbook_id", [p.pk for p in playbooks])
    return [SourceRow(p, counts[p.pk]) for p in playbooks]


def campaign_list(*, tenant: Tenant) -> list[SourceRow]:
    campaigns = list(Campaign.objects.for_tenant(tenant).order_by("-send_at"))
    counts = counts_by(tenant, "campaign_id", [c.pk for c in campaigns])
    return [SourceRow(c, counts[c.pk]) for c in campaigns]


def playbook_get(*, tenant: Tenant, playbook_id: Any) -> Playbook:
    playbook = Playbook.objects.for_tenant(tenant).filter(pk=playbook_id).first()
    if playbook is None:
        raise Http404("No such playbook")
    return playbook


def campaign_get(*, tenant: Tenant, campaign_id: Any) -> Campaign:
    campaign = Campaign.objects.for_tenant(tenant).filter(pk=campaign_id).first()
    if campaign is None:
        raise Http404("No such campaign")
    return campaign


# --- effect over time -------------------------------------------------------------------------


@dataclass
class EffectWeek:
    """One week's treated and holdout outreach of one source, or of one playbook among all."""

    week: date
    treated: int
    treated_contacted: int
    holdout: int
    holdout_contacted: int
    playbook: str | None = None
    delivered: int = 0
    delivered_contacted: int = 0

    @property
    def treated_rate(self) -> float | None:
        return self.treated_contacted / self.treated if self.treated else None

    @property
    def holdout_rate(self) -> float | None:
        return self.holdout_contacted / self.holdout if self.holdout else None


def effect_weeks(
    *,
    tenant: Tenant,
    window_days: int,
    swept_at: datetime | None,
    weeks: int = EFFECT_WEEKS,
    **source: Any,
) -> list[EffectWeek]:
    """Treated and holdout outreach (and how many contacted support within the window), per
    week of trigger time, from the outcomes the pipeline recorded (campaigns.outcomes); none
    before the first sweep. One query over the source's outreach rows, no signal lookups."""
    if swept_at is None:
        return []
    all_playbooks = bool(source.get("all_playbooks"))
    rows = outcome_counts(
        tenant=tenant,
        window_days=window_days,
        swept_at=swept_at,
        since=swept_at - timedelta(weeks=weeks),
        by_week=True,
        by_playbook=all_playbooks,  # strata: each playbook is compared with its own holdout
        **source,
    )
    cells: dict[tuple, EffectWeek] = {}
    for week, playbook, holdout, n, contacted, delivered, delivered_contacted in rows:
        key = (week, str(playbook) if playbook else None)
        item = cells.setdefault(key, EffectWeek(week, 0, 0, 0, 0, playbook=key[1]))
        if holdout:
            item.holdout, item.holdout_contacted = n, contacted
        else:
            item.treated, item.treated_contacted = n, contacted
            item.delivered, item.delivered_contacted = delivered, delivered_contacted
    return [cells[k] for k in sorted(cells, key=lambda k: (k[0], k[1] or ""))]


def source_effect(
    *, tenant: Tenant, window_days: int, swept_at: datetime | None, **source: Any
) -> dict[str, Any]:
    """The effectiveness API's payload for one playbook or campaign, over all its outreach,
    from the recorded outcomes (the API itself looks signals up live)."""
    arms = {}
    if swept_at is not None:
        for _, _, holdout, *cells in outcome_counts(
            tenant=tenant, window_days=window_days, swept_at=swept_at, **source
        ):
            arms[holdout] = cells
    (t, tc, dl, dc), (h, hc, _, _) = arms.get(False, (0, 0, 0, 0)), arms.get(True, (0, 0, 0, 0))
    counts = {"treated": t, "treated_contacted": tc, "holdout": h, "holdout_contacted": hc}
    return {
        **arms_payload(window_days=window_days, **counts),
        **risk_ratio_stats(**counts),
        **reached_payload(delivered=dl, delivered_contacted=dc, **counts),
        "engagement": engagement_counts(tenant=tenant, **source),
    }


def _summed(weeks: list[EffectWeek]) -> dict[str, int]:
    return {
        "treated": sum(w.treated for w in weeks),
        "treated_contacted": sum(w.treated_contacted for w in weeks),
        "holdout": sum(w.holdout for w in weeks),
        "holdout_contacted": sum(w.holdout_contacted for w in weeks),
    }


def pooled_stats(weeks: list[EffectWeek]) -> dict[str, Any]:
    """Relative reduction, interval and p-value over `weeks`: per playbook and week strata
    (Mantel-Haenszel) when they come from several playbooks, else the API's crude comparison."""
    if any(w.playbook for w in weeks):
        return mantel_haenszel_stats(
            [(w.treated, w.treated_contacted, w.holdout, w.holdout_contacted) for w in weeks]
        )
    return risk_ratio_stats(**_summed(weeks))


def effect_summary(weeks: list[EffectWeek], window_days: int) -> dict[str, Any]:
    """The contract's treated/holdout/interval shape, pooled over `weeks`; `stratified` says
    whether the estimate compares each playbook with its own holdout (the arms' raw rates
    then mix playbooks and are not the comparison)."""
    summed = _summed(weeks)
    stratified = any(w.playbook for w in weeks)
    reached = reached_payload(
        delivered=sum(w.delivered for w in weeks),
        delivered_contacted=sum(w.delivered_contacted for w in weeks),
        **summed,
    )
    if stratified:  # pooled raw counts would mix unlike holdouts (see mantel_haenszel_stats)
        reached["effect_on_reached"] = None
    return {
        **arms_payload(window_days=window_days, **summed),
        **pooled_stats(weeks),
        **reached,
        "stratified": stratified,
    }


def cumulative_effect(weeks: list[EffectWeek]) -> list[dict[str, Any]]:
    """The pooled estimate as of each week: how the interval narrowed as outreach accumulated."""
    out = []
    for week in sorted({w.week for w in weeks}):
        out.append({"week": week, **pooled_stats([w for w in weeks if w.week <= week])})
    return out
