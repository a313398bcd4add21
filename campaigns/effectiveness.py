"""Did the outreach prevent contacts? Treated vs holdout contact rates, as the contract says.

Units are outreach rows (a customer-window): the arm comes from the hash of (tenant,
source, customer) at firing time, suppressed rows belong to neither arm (the budget was
applied before the split), and every non-suppressed treated row counts whether or not a
reviewer later rejected it (intention to treat: the holdout has no reviewer either).
Only outreach whose window [triggered_at, triggered_at + window) has fully elapsed counts.

The interval is on the log risk ratio (Katz): se = sqrt(1/a - 1/n1 + 1/c - 1/n0), with 0.5
added to every cell when one of the four is zero; relative_reduction = 1 - RR, so its
interval is [1 - exp(hi), 1 - exp(lo)]. The p-value is the two-sided Wald test of RR = 1.

That comparison is by assignment. Beside it, `effect_on_reached` estimates the effect on the
customers the message actually reached (status sent; rejected, expired and pending outreach
were assigned but never delivered): the complier average effect of one-sided noncompliance,
the assignment effect divided by the delivered share (complier_effect).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from django.db import connection
from django.utils import timezone

from accounts.models import Tenant
from campaigns.models import Campaign, Playbook
from proactive.signal_patterns import patterns_sql
from proactive.sql import merge_params

Z95 = 1.959963984540054


# Below these the complier effect divides by a share too small to estimate it: it is not reported.
MIN_REACHED = 10
MIN_REACHED_SHARE = 0.2

NO_ESTIMATE = {"relative_reduction": None, "ci95": None, "p_value": None, "backfiring": False}


def _estimate(log_rr: float, se: float, reduction: float) -> dict[str, Any]:
    """The reported shape of a log risk ratio with its standard error."""
    lo, hi = log_rr - Z95 * se, log_rr + Z95 * se
    return {
        "relative_reduction": round(reduction, 6),
        "ci95": [round(1 - math.exp(hi), 6), round(1 - math.exp(lo), 6)],
        "p_value": round(math.erfc(abs(log_rr / se) / math.sqrt(2)), 6) if se > 0 else 1.0,
        # The treated arm contacts support significantly MORE than its holdout.
        "backfiring": lo > 0,
    }


def risk_ratio_stats(
    *, treated: int, treated_contacted: int, holdout: int, holdout_contacted: int
) -> dict[str, Any]:
    """relative_reduction, ci95 and p_value for two arms; None when an arm is empty."""
    if treated == 0 or holdout == 0:
        return dict(NO_ESTIMATE)
    a, b = float(treated_contacted), float(treated - treated_contacted)
    c, d = float(holdout_contacted), float(holdout - holdout_contacted)
    if min(a, b, c, d) == 0:
        a, b, c, d = a + 0.5, b + 0.5, c + 0.5, d + 0.5
    n1, n0 = a + b, c + d
    log_rr = math.log((a / n1) / (c / n0))
    se = math.sqrt(1 / a - 1 / n1 + 1 / c - 1 / n0)
    raw_treated = treated_contacted / treated
    raw_holdout = holdout_contacted / holdout
    reduction = 1 - raw_treated / raw_holdout if raw_holdout > 0 else 1 - math.exp(log_rr)
    return _estimate(log_rr, se, reduction)


def mantel_haenszel_stats(strata: list[tuple[int, int, int, int]]) -> dict[str, Any]:
    """The pooled risk ratio over strata of (treated, treated_contacted, holdout, holdout_contacted),
    each stratum compared only with itself (Mantel-Haenszel; Greenland-Robins variance of log RR).

    Pooling raw counts across playbooks is wrong when their holdout shares differ: a playbook
    for risky customers with a 10% holdout and one for calm customers with a 20% holdout make
    "treated" look riskier than "held out" with no effect at all (Simpson's paradox). With one
    stratum this equals risk_ratio_stats (the variance formula reduces to Katz's).
    """
    used = [(float(tc), float(t - tc), float(hc), float(h - hc)) for t, tc, h, hc in strata if t and h]
    if not used:
        return dict(NO_ESTIMATE)
    if not sum(a for a, _, _, _ in used) or not sum(c for _, _, c, _ in used):
        used = [(a + 0.5, b + 0.5, c + 0.5, d + 0.5) for a, b, c, d in used]
    r = s = p = 0.0
    for a, b, c, d in used:
        n1, n0 = a + b, c + d
        n = n1 + n0
        r += a * n0 / n
        s += c * n1 / n
        p += (n1 * n0 * (a + c) - a * c * n) / n**2
    log_rr = math.log(r / s)
    return _estimate(log_rr, math.sqrt(p / (r * s)), 1 - math.exp(log_rr))


def complier_effect(
    *,
    treated: int,
    treated_contacted: int,
    holdout: int,
    holdout_contacted: int,
    delivered: int,
    delivered_contacted: int,
) -> dict[str, Any] | None:
    """The effect on assigned customers whose message was delivered (the compliers), or None.

    With p0 the holdout's contact rate, p1 the assigned arm's, d the delivered share and u the
    share of the assigned arm that was not delivered and contacted support:
    absolute_reduction = (p0 - p1) / d (Wald/Bloom estimator); the compliers' contact rate
    without the message is (p0 - u) / d, so relative_reduction = (p0 - p1) / (p0 - u), with a
    delta-method interval from the multinomial cells of the assigned arm and the binomial
    holdout (upper end capped at 100%: a reduction cannot exceed it). None when fewer than
    MIN_REACHED were delivered, or less than MIN_REACHED_SHARE of those assigned, or when
    the compliers' baseline rate is not positive.
    """
    if not treated or not holdout or delivered < MIN_REACHED or delivered / treated < MIN_REACHED_SHARE:
        return None
    n1, n0 = float(treated), float(holdout)
    p0, p1 = holdout_contacted / n0, treated_contacted / n1
    d = delivered / n1
    u = (treated_contacted - delivered_contacted) / n1
    itt, baseline = p0 - p1, p0 - u
    if baseline <= 0:
        return None
    v0 = p0 * (1 - p0) / n0
    var_itt = v0 + p1 * (1 - p1) / n1
    var_baseline = v0 + u * (1 - u) / n1
    cov = v0 + u * (1 - p1) / n1
    rel = itt / baseline
    se = math.sqrt(max(var_itt - 2 * rel * cov + rel**2 * var_baseline, 0.0)) / baseline
    return {
        "absolute_reduction": round(itt / d, 6),
        "relative_reduction": round(rel, 6),
        "ci95": [round(rel - Z95 * se, 6), round(min(rel + Z95 * se, 1.0), 6)],
    }


def reached_payload(*, treated: int, delivered: int, **counts: int) -> dict[str, Any]:
    """The contract's `reached` and `effect_on_reached` (counts as for complier_effect)."""
    return {
        "reached": {"customers": delivered, "share": round(delivered / treated, 6) if treated else None},
        "effect_on_reached": complier_effect(treated=treated, delivered=delivered, **counts),
    }


def arms_payload(
    *, window_days: int, treated: int, treated_contacted: int, holdout: int, holdout_contacted: int
) -> dict[str, Any]:
    """The contract's window and treated/holdout arms (the estimate is added by the caller)."""

    def arm(n: int, contacted: int) -> dict[str, Any]:
        return {"customers": n, "contacted": contacted, "rate": round(contacted / n, 6) if n else None}

    return {
        "window_days": window_days,
        "treated": arm(treated, treated_contacted),
        "holdout": arm(holdout, holdout_contacted),
    }


def _source_column(playbook: Playbook | None, campaign: Campaign | None) -> tuple[str, Any]:
    """The outreach column naming the source, and the source's key: exactly one must be given."""
    if playbook is not None and campaign is None:
        return "playbook_id", playbook.pk
    if campaign is not None and playbook is None:
        return "campaign_id", campaign.pk
    raise ValueError("pass exactly one of playbook or campaign")


def effectiveness(
    *,
    tenant: Tenant,
    playbook: Playbook | None = None,
    campaign: Campaign | None = None,
    window_days: int = 14,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """The contract's effectiveness payload for one playbook or campaign."""
    column, source_id = _source_column(playbook, campaign)
    as_of = as_of or timezone.now()
    contact, contact_params = patterns_sql(tenant.contact_signals, "s.name", "contact")
    with connection.cursor() as cur:
        cur.execute(
            f"""
            SELECT holdout, count(*), count(*) FILTER (WHERE contacted),
                   count(*) FILTER (WHERE status = 'sent'),
                   count(*) FILTER (WHERE status = 'sent' AND contacted)
            FROM (
                SELECT o.holdout, o.status, EXISTS (
                    SELECT 1 FROM proactive_signal s
                    WHERE s.tenant_id = o.tenant_id AND s.customer_id = o.customer_id
                      AND s.timestamp >= o.triggered_at
                      AND s.timestamp < o.triggered_at + make_interval(days => %(window_days)s) AND {contact}
                ) AS contacted
                FROM campaigns_outreach o
                WHERE o.tenant_id = %(tenant_id)s AND o.{column} = %(source_id)s AND o.status <> 'suppressed'
                  AND o.triggered_at + make_interval(days => %(window_days)s) <= %(as_of)s
            ) rows
            GROUP BY holdout
            """,  # noqa: S608 (column is one of two literals, contact is built from placeholders)
            merge_params(
                {"window_days": window_days, "tenant_id": tenant.pk, "source_id": source_id, "as_of": as_of},
                contact_params,
            ),
        )
        arms = {row[0]: row[1:] for row in cur.fetchall()}
    (t, tc, dl, dc), (h, hc, _, _) = arms.get(False, (0, 0, 0, 0)), arms.get(True, (0, 0, 0, 0))
    counts = {"treated": t, "treated_contacted": tc, "holdout": h, "holdout_contacted": hc}
    return {
        **arms_payload(window_days=window_days, **counts),
        **risk_ratio_stats(**counts),
        **reached_payload(delivered=dl, delivered_contacted=dc, **counts),
        "engagement": engagement_counts(tenant=tenant, playbook=playbook, campaign=campaign),
    }


def engagement_counts(
    *, tenant: Tenant, playbook: Playbook | None = None, campaign: Campaign | None = None
) -> dict[str, int]:
    """What the recipients of a source's delivered outreach did with it (held out excluded)."""
    column, source_id = _source_column(playbook, campaign)
    with connection.cursor() as cur:
        cur.execute(
            f"""
            SELECT count(sent_at), count(seen_at), count(clicked_at), count(dismissed_at),
                   count(*) FILTER (WHERE feedback = 'helpful'),
                   count(*) FILTER (WHERE feedback = 'not_helpful')
            FROM campaigns_outreach WHERE tenant_id = %s AND {column} = %s AND NOT holdout
            """,  # noqa: S608 (column is one of two literals)
            [tenant.pk, source_id],
        )
        row = cur.fetchone()
    return dict(zip(["sent", "seen", "clicked", "dismissed", "helpful", "not_helpful"], row, strict=True))
