"""Outreach outcomes: did the customer contact support after we reached out (or held them out)?

The effectiveness API answers this live, with one EXISTS into `proactive_signal` per outreach
row; at 75,000 outreach rows that costs ~0.5 s, too slow for the pages every admin opens. So
the pipeline's `outcomes` step records, per outreach row, the first contact signal in
[triggered_at, triggered_at + OUTCOME_DAYS): a contact within a window of W days is then
`first_contact_at < triggered_at + W` for any W up to OUTCOME_DAYS, the same test as the API's.

Pages count only outreach whose window had elapsed when the sweep ran (`OutcomeSweep.swept_at`),
so what they show is exact as of that time. Sweeps are incremental: rows whose longest window
had already elapsed at the previous sweep keep their value, unless the tenant changed its
contact signals (then every row is recomputed). Only rows whose value changed are written.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Tenant
from campaigns.models import Campaign, OutcomeSweep, Outreach, Playbook
from proactive.chunks import CHUNK_SIZE, customer_id_ranges
from proactive.rollups import rollups_fold
from proactive.signal_patterns import patterns_sql
from proactive.sql import merge_params

# The longest window the pages offer; a row's outcome is final once this has elapsed.
OUTCOME_DAYS = 90
LOCK_NAMESPACE = 0x4F55  # pg_advisory_xact_lock(namespace, tenant_id) around a sweep


def outcomes_sweep(
    *, tenant: Tenant, as_of: datetime | None = None, run: Any = None, chunk_size: int = CHUNK_SIZE
) -> dict[str, Any]:
    """Bring `first_contact_at` up to date for the tenant's outreach (a pipeline step).

    `as_of` is accepted for the pipeline's signature and ignored: an outcome is what the
    signals stored now say, whatever time a run scores as of.
    """
    rollups_fold(tenant_id=tenant.pk)  # the sweep reads the daily rollups and the name catalogue
    now = timezone.now()
    with transaction.atomic():
        with connection.cursor() as cur:  # one sweep per tenant at a time (two schedulers' runs)
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, tenant.pk])
        state = OutcomeSweep.objects.for_tenant(tenant).first()
        # Rows whose longest window was still open at the last sweep, and rows created since
        # (a run as of a past time records outreach triggered long ago); None: every row.
        since: tuple[datetime, datetime] | None = None
        if state is not None and state.contact_signals == list(tenant.contact_signals):
            since = (state.swept_at - timedelta(days=OUTCOME_DAYS), state.swept_at)
        full = since is None
        checked = changed = 0
        names = contact_names(tenant)
        for lo, hi in customer_id_ranges(tenant, chunk_size):
            n_checked, n_changed = _sweep_range(tenant, names, lo, hi, since, now)
            checked += n_checked
            changed += n_changed
        OutcomeSweep.objects.for_tenant(tenant).update_or_create(
            tenant=tenant,
            defaults={
                "swept_at": now,
                "contact_signals": list(tenant.contact_signals),
                "rows_checked": checked,
                "rows_changed": changed,
            },
        )
    return {"mode": "full" if full else "incremental", "checked": checked, "changed": changed}


def contact_names(tenant: Tenant) -> list[str]:
    """The signal names the tenant has sent that are contacts (proactive.signal_patterns.patterns_sql
    decides what a pattern matches)."""
    contact, params = patterns_sql(tenant.contact_signals, "n.name", "contact")
    with connection.cursor() as cur:
        cur.execute(
            "SELECT n.name FROM proactive_signalname n "  # noqa: S608
            f"WHERE n.tenant_id = %(tenant_id)s AND {contact} ORDER BY 1",
            merge_params({"tenant_id": tenant.pk}, params),
        )
        return [name for (name,) in cur.fetchall()]


# Per outreach row: the first two days with a contact from the daily rollups (an index probe on
# (tenant, customer, name, day)), then the raw signals of those days only. The first contact at
# or after triggered_at falls on the first such day, or on the second when the first is the
# trigger day and its contacts came before the trigger. Probing raw signals directly reads every
# signal of the customer's 90 days, a cost that grows with how busy the customer is; this reads
# at most two days of them (figures in docs/benchmarks.md).
SWEEP_SQL = """
WITH c AS MATERIALIZED (
    SELECT o.id, o.customer_id, o.triggered_at, o.first_contact_at AS old, ARRAY(
        SELECT DISTINCT r.day FROM proactive_signaldaily r
        WHERE r.tenant_id = %(tenant)s AND r.customer_id = o.customer_id AND r.name = ANY(%(names)s)
          AND r.day >= (o.triggered_at AT TIME ZONE 'UTC')::date
          AND r.day <= ((o.triggered_at + make_interval(days => %(days)s)) AT TIME ZONE 'UTC')::date
        ORDER BY r.day LIMIT 2) AS days
    FROM campaigns_outreach o
    WHERE o.tenant_id = %(tenant)s AND o.customer_id BETWEEN %(lo)s AND %(hi)s {since}
), f AS (
    SELECT c.id, c.old, CASE WHEN cardinality(c.days) > 0 THEN (
        SELECT min(s.timestamp) FROM proactive_signal s
        WHERE s.tenant_id = %(tenant)s AND s.customer_id = c.customer_id AND s.name = ANY(%(names)s)
          AND s.timestamp >= greatest(c.triggered_at, c.days[1]::timestamp AT TIME ZONE 'UTC')
          AND s.timestamp < least(c.triggered_at + make_interval(days => %(days)s),
                                  (c.days[cardinality(c.days)] + 1)::timestamp AT TIME ZONE 'UTC')
          AND s.timestamp <= %(now)s) END AS new
    FROM c
), u AS (
    UPDATE campaigns_outreach o SET first_contact_at = f.new
    FROM f WHERE o.tenant_id = %(tenant)s AND o.id = f.id AND f.old IS DISTINCT FROM f.new
    RETURNING 1
)
SELECT (SELECT count(*) FROM f), (SELECT count(*) FROM u)
"""


def _sweep_range(
    tenant: Tenant,
    names: list[str],
    lo: int,
    hi: int,
    since: tuple[datetime, datetime] | None,
    now: datetime,
) -> tuple[int, int]:
    params: dict[str, Any] = {
        "tenant": tenant.pk,
        "names": names,
        "days": OUTCOME_DAYS,
        "lo": lo,
        "hi": hi,
        "now": now,
    }
    since_sql = ""
    if since is not None:
        since_sql = "AND (o.triggered_at > %(window_open)s OR o.created_at > %(last_sweep)s)"
        params.update(window_open=since[0], last_sweep=since[1])
    with connection.cursor() as cur:
        cur.execute(SWEEP_SQL.format(since=since_sql), params)
        checked, changed = cur.fetchone()
    return checked, changed


def sweep_get(*, tenant: Tenant) -> OutcomeSweep | None:
    """The tenant's last completed sweep, or None when outcomes were never measured."""
    return OutcomeSweep.objects.for_tenant(tenant).first()


def source_filter_sql(
    *, playbook: Playbook | None = None, campaign: Campaign | None = None, all_playbooks: bool = False
) -> tuple[str, dict[str, Any]]:
    """SQL (on alias `o`) choosing one playbook's, one campaign's or every playbook's outreach;
    parameter `source_id`."""
    if all_playbooks:
        return "o.playbook_id IS NOT NULL", {}
    if playbook is not None:
        return "o.playbook_id = %(source_id)s", {"source_id": playbook.pk}
    if campaign is not None:
        return "o.campaign_id = %(source_id)s", {"source_id": campaign.pk}
    raise ValueError("pass a playbook, a campaign or all_playbooks=True")


def outcome_counts(
    *,
    tenant: Tenant,
    window_days: int,
    swept_at: datetime,
    since: datetime | None = None,
    by_week: bool = False,
    by_playbook: bool = False,
    **source: Any,
) -> list[tuple]:
    """(week or None, playbook id or None, holdout, outreach, contacted, delivered,
    delivered_contacted) counted as campaigns.effectiveness counts: not suppressed, the window
    elapsed by the sweep, a contact within the window; delivered = status sent."""
    if not 1 <= window_days <= OUTCOME_DAYS:
        raise ValueError(f"window_days must be within 1..{OUTCOME_DAYS}")
    source_sql, source_params = source_filter_sql(**source)
    week = "date_trunc('week', o.triggered_at AT TIME ZONE 'UTC')::date" if by_week else "NULL::date"
    playbook = "o.playbook_id" if by_playbook else "NULL::uuid"
    since_sql = "AND o.triggered_at > %(since)s" if since is not None else ""
    contacted = "o.first_contact_at < o.triggered_at + make_interval(days => %(window_days)s)"
    with connection.cursor() as cur:
        cur.execute(
            f"""
            SELECT {week} AS week, {playbook} AS playbook, o.holdout, count(*),
                   count(*) FILTER (WHERE {contacted}),
                   count(*) FILTER (WHERE o.status = %(sent)s),
                   count(*) FILTER (WHERE o.status = %(sent)s AND {contacted})
            FROM campaigns_outreach o
            WHERE o.tenant_id = %(tenant_id)s AND {source_sql} AND o.status <> %(suppressed)s {since_sql}
              AND o.triggered_at + make_interval(days => %(window_days)s) <= %(swept_at)s
            GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            """,  # noqa: S608 (source_sql, week, playbook, since_sql and contacted are literals)
            merge_params(
                {
                    "window_days": window_days,
                    "sent": Outreach.Status.SENT,
                    "suppressed": Outreach.Status.SUPPRESSED,
                    "tenant_id": tenant.pk,
                    "since": since,
                    "swept_at": swept_at,
                },
                source_params,
            ),
        )
        return cur.fetchall()
