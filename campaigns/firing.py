"""The firing engine: fires playbooks, campaigns and incident notices as outreach.

Firing is set-based: the customers' features are materialised once per chunk of customers in a
temporary table, every source's condition is compiled to a WHERE clause over it, and one
INSERT ... ON CONFLICT DO NOTHING arbitrates the contact budget, splits off the holdout and
writes the outreach.

Dedupe keys (unique per tenant, so concurrent or repeated runs cannot duplicate):
    playbook   pb:<playbook>:<customer>:<bucket>   bucket = floor(epoch(T) / cooldown seconds)
    campaign   cmp:<campaign>:<customer>
    incident   inc:<incident>:<customer>   and  incfu:<incident>:<customer> for the follow-up
The playbook bucket makes "one outreach per (playbook, customer, cooldown window)" a unique
constraint; a NOT EXISTS on (playbook, customer, |triggered_at - T| < cooldown) also keeps two
outreach of a playbook at least a cooldown apart across a bucket boundary. Each chunk runs in
one transaction holding a per-tenant advisory lock, so concurrent runs serialise and see each
other's rows (budget counts stay exact); the unique constraint is the backstop.

Budget: a customer may get `tenant.budget_max_messages` per `tenant.budget_per_days`. Existing
outreach in (T - per_days, T] with status sent, held_out, pending_review or snoozed use it:
held-out outreach uses the budget exactly as a treated one would, and the holdout split is
made after arbitration, so both arms come from the same budget-limited population.
Competing candidates rank by budget override (incident notices), priority, risk, then source
order; losers become `suppressed` with the reason. While an incident is open, other nudges to
the customers it notified are suppressed too.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from accounts.models import Tenant
from campaigns.budget import BUDGET_STATUSES
from campaigns.conditions import (
    Condition,
    ConditionError,
    columns_for,
    compile_sql,
    condition_metrics,
    parse_condition,
)
from campaigns.delivery import outreach_deliver_on_commit
from campaigns.models import Playbook
from campaigns.rules import PRIORITIES, action_validate
from campaigns.webhook_events import outreach_events_emit
from proactive.chunks import CHUNK_SIZE, customer_id_ranges
from proactive.features.compute import features_query
from proactive.features.metrics import Metric
from proactive.sql import merge_params

log = logging.getLogger(__name__)


LOCK_NAMESPACE = 0x5052  # pg_advisory_xact_lock(namespace, tenant_id): one firing per tenant at a time


@dataclass
class Source:
    """Something that fires outreach: a playbook, a campaign, an incident notice or follow-up."""

    kind: str  # pb | cmp | inc | incfu
    id: uuid.UUID
    action: dict[str, Any]
    condition: Condition | None = None
    holdout_percent: int = 0
    cooldown_days: int | None = None
    review_expiry_hours: int = 72
    overrides_budget: bool = False
    blocked_by_incidents: bool = True
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def fk(self) -> str:
        return {"pb": "playbook_id", "cmp": "campaign_id"}.get(self.kind, "incident_id")

    def dedupe_prefix(self) -> str:
        return f"{self.kind}:{self.id}:"


def _advisory_lock(tenant: Tenant) -> None:
    with connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, tenant.pk])


def _deliver_on_commit(tenant: Tenant, outreach_ids: list[str]) -> None:
    if outreach_ids:
        outreach_deliver_on_commit(tenant=tenant, outreach_ids=outreach_ids)


_SOURCES_TABLE = """
CREATE TEMP TABLE pb_sources (
    idx int PRIMARY KEY, kind text, source_id uuid, channel text, title text, body text, cta_label text,
    cta_url text, requires_review bool, priority int, holdout_percent int, cooldown_days int,
    review_expiry_hours int, overrides_budget bool, blocked_by_incidents bool, dedupe_prefix text
) ON COMMIT DROP
"""


_FIRE = """
WITH cand AS (
    SELECT c.customer_id, c.context, s.*,
           CASE WHEN s.cooldown_days IS NULL THEN s.dedupe_prefix || c.customer_id
                ELSE s.dedupe_prefix || c.customer_id || ':'
                     || floor(extract(epoch FROM %(t)s::timestamptz) / (s.cooldown_days * 86400))::bigint
           END AS dedupe_key
    FROM pb_candidates c JOIN pb_sources s ON s.idx = c.idx
), prior AS (
    -- (source, customer) pairs that already have outreach: within the cooldown for a playbook,
    -- ever for a campaign or an incident notice/follow-up. Read through the (tenant, customer)
    -- index for the candidates only, so the cost follows the candidates, not the history.
    SELECT DISTINCT s.idx, o.customer_id
    FROM campaigns_outreach o
    JOIN pb_sources s ON s.source_id = coalesce(o.playbook_id, o.campaign_id, o.incident_id)
    WHERE o.tenant_id = %(tenant)s
      AND o.customer_id BETWEEN %(lo)s AND %(hi)s
      AND o.customer_id IN (SELECT customer_id FROM pb_candidates)
      AND CASE WHEN s.kind = 'pb'
               THEN o.triggered_at > %(t)s::timestamptz - make_interval(days => s.cooldown_days)
                AND o.triggered_at < %(t)s::timestamptz + make_interval(days => s.cooldown_days)
               ELSE starts_with(o.dedupe_key, s.dedupe_prefix) END
), fresh AS (
    SELECT cand.* FROM cand
    WHERE NOT EXISTS (SELECT 1 FROM prior p WHERE p.idx = cand.idx AND p.customer_id = cand.customer_id)
), used AS (
    SELECT o.customer_id, count(*) AS n FROM campaigns_outreach o
    WHERE o.tenant_id = %(tenant)s AND o.status = ANY(%(budget_statuses)s)
      AND o.triggered_at > %(t)s::timestamptz - make_interval(days => %(per_days)s)
      AND o.triggered_at <= %(t)s::timestamptz
      AND o.customer_id BETWEEN %(lo)s AND %(hi)s
    GROUP BY o.customer_id
), blocked AS (
    SELECT DISTINCT o.customer_id FROM campaigns_incident i
    JOIN campaigns_outreach o ON o.tenant_id = %(tenant)s AND o.incident_id = i.id
    WHERE i.tenant_id = %(tenant)s AND i.status = 'open' AND o.status = 'sent'
      AND o.customer_id BETWEEN %(lo)s AND %(hi)s
), ranked AS (
    SELECT f.*, rs.score AS risk,
           f.blocked_by_incidents AND b.customer_id IS NOT NULL AS is_blocked,
           coalesce(u.n, 0) + row_number() OVER (
               PARTITION BY f.customer_id
               ORDER BY f.overrides_budget DESC, f.priority DESC, rs.score DESC NULLS LAST, f.idx
           ) AS nth,
           ('x' || substr(md5(%(tenant)s || ':' || f.source_id || ':' || f.customer_id), 1, 8))
               ::bit(32)::bigint %% 100 < f.holdout_percent AS in_holdout
    FROM fresh f
    LEFT JOIN used u ON u.customer_id = f.customer_id
    LEFT JOIN blocked b ON b.customer_id = f.customer_id
    LEFT JOIN proactive_riskscore rs ON rs.tenant_id = %(tenant)s AND rs.customer_id = f.customer_id
     AND rs.customer_id BETWEEN %(lo)s AND %(hi)s
), decided AS (
    SELECT r.*,
           CASE WHEN NOT r.overrides_budget AND r.is_blocked THEN 'incident open'
                WHEN NOT r.overrides_budget AND r.nth > %(max_messages)s THEN %(budget_reason)s
           END AS reason
    FROM ranked r
), ins AS (
    INSERT INTO campaigns_outreach (
        id, tenant_id, customer_id, playbook_id, campaign_id, incident_id, dedupe_key, channel, status,
        holdout, priority, risk_score, triggered_at, context, title, body, cta_label, cta_url,
        suppressed_reason, reject_reason, feedback, review_deadline, sent_at, created_at)
    SELECT gen_random_uuid(), %(tenant)s, d.customer_id,
           CASE WHEN d.kind = 'pb' THEN d.source_id END,
           CASE WHEN d.kind = 'cmp' THEN d.source_id END,
           CASE WHEN d.kind IN ('inc', 'incfu') THEN d.source_id END,
           d.dedupe_key, d.channel,
           CASE WHEN d.reason IS NOT NULL THEN 'suppressed' WHEN d.in_holdout THEN 'held_out'
                WHEN d.requires_review THEN 'pending_review' ELSE 'sent' END,
           d.reason IS NULL AND d.in_holdout, d.priority, d.risk, %(t)s, d.context, d.title, d.body,
           d.cta_label, d.cta_url, coalesce(d.reason, ''), '', '',
           CASE WHEN d.reason IS NULL AND NOT d.in_holdout AND d.requires_review
                THEN %(t)s::timestamptz + make_interval(hours => d.review_expiry_hours) END,
           CASE WHEN d.reason IS NULL AND NOT d.in_holdout AND NOT d.requires_review
                THEN %(t)s::timestamptz END,
           now()
    FROM decided d
    ON CONFLICT (tenant_id, dedupe_key) DO NOTHING
    RETURNING id, coalesce(playbook_id, campaign_id, incident_id) AS source_id, status
)
SELECT source_id, status, count(*), array_agg(id::text) FILTER (WHERE status = 'sent'), array_agg(id::text)
FROM ins GROUP BY 1, 2
"""


def _context_sql(source: Source, columns: dict[Metric, str], name: str) -> tuple[str, dict[str, Any]]:
    """A jsonb object of the condition's metric values; parameters `NAME_0`, `NAME_1`, ..."""
    if source.condition is None:
        return "'{}'::jsonb", {}
    parts: list[str] = []
    params: dict[str, Any] = {}
    for j, metric in enumerate(condition_metrics(source.condition)[:50]):
        parts.append(f"%({name}_{j})s, {columns[metric]}")
        params[f"{name}_{j}"] = str(metric)
    return f"jsonb_build_object({', '.join(parts)})", params


def fire(
    *,
    tenant: Tenant,
    as_of: datetime,
    sources: Sequence[Source],
    chunk_size: int | None = None,
    extra_candidates: dict[int, tuple[str, dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Fire `sources` as of `as_of` over all customers, chunk by chunk; returns counts.

    `extra_candidates` maps a source index to SQL selecting customer ids (for follow-ups that
    go to a fixed set rather than a condition) with its named parameters (`proactive.sql`;
    `candidate_idx`, `range_lo` and `range_hi` are taken). See the module docstring for the rules.
    """
    metrics = list(dict.fromkeys(m for s in sources if s.condition for m in condition_metrics(s.condition)))
    columns = columns_for(metrics)
    matched_columns = columns_for(metrics, alias="m")  # the same columns, read from the matched rows
    timings = {"features": 0.0, "firing": 0.0}
    totals = dict.fromkeys(("fired", "sent", "pending_review", "held_out", "suppressed"), 0)
    if not sources:
        return {**totals, "seconds": timings}
    budget_reason = f"contact budget: {tenant.budget_max_messages} per {tenant.budget_per_days} days"
    for lo, hi in customer_id_ranges(tenant, chunk_size or CHUNK_SIZE):
        with transaction.atomic(), connection.cursor() as cur:
            _advisory_lock(tenant)
            # ON COMMIT DROP does not fire when the caller's transaction spans several chunks.
            cur.execute("DROP TABLE IF EXISTS pb_features, pb_sources, pb_candidates")
            started = time.perf_counter()
            feat_sql, feat_params, _ = features_query(
                tenant_id=tenant.pk, as_of=as_of, metrics=metrics, id_range=(lo, hi)
            )
            cur.execute(f"CREATE TEMP TABLE pb_features ON COMMIT DROP AS {feat_sql}", feat_params)
            timings["features"] += time.perf_counter() - started
            started = time.perf_counter()
            cur.execute(_SOURCES_TABLE)
            cur.executemany(
                f"INSERT INTO pb_sources VALUES ({', '.join(['%s'] * 16)})",  # noqa: S608
                [
                    (
                        i, s.kind, s.id, s.action.get("channel", "in_app"), s.action["title"],
                        s.action.get("body", ""), s.action.get("cta_label", ""), s.action.get("cta_url", ""),
                        bool(s.action.get("requires_review")), PRIORITIES[s.action.get("priority", "normal")],
                        s.holdout_percent, s.cooldown_days, s.review_expiry_hours, s.overrides_budget,
                        s.blocked_by_incidents, s.dedupe_prefix(),
                    )
                    for i, s in enumerate(sources)
                ],
            )  # fmt: skip
            cur.execute(
                "CREATE TEMP TABLE pb_candidates (idx int, customer_id bigint, context jsonb) ON COMMIT DROP"
            )
            # One pass over the features evaluates every condition; the context (the metric
            # values that made it fire) is built only for the rows that matched.
            # Source i binds `src<i>_idx`, its condition `src<i>_cond_..` and its context `src<i>_ctx_..`.
            hits, contexts, indexes = [], [], []
            params: dict[str, Any] = {}
            for i, source in enumerate(sources):
                if source.condition is not None:
                    where, where_params = compile_sql(source.condition, columns, f"src{i}_cond")
                    hits.append(where)
                    indexes.append(i)
                    context, context_params = _context_sql(source, matched_columns, f"src{i}_ctx")
                    contexts.append(f"WHEN %(src{i}_idx)s THEN {context}")
                    params = merge_params(params, {f"src{i}_idx": i}, where_params, context_params)
            if hits:
                # Only rows that match something are expanded to one row per matching source.
                cur.execute(
                    "INSERT INTO pb_candidates "  # noqa: S608
                    f"SELECT u.idx, m.customer_id, CASE u.idx {' '.join(contexts)} END "
                    f"FROM (SELECT f.*, ARRAY[{', '.join(hits)}] AS hits FROM pb_features f) m "
                    "CROSS JOIN LATERAL unnest(m.hits, %(indexes)s::int[]) u(hit, idx) "
                    "WHERE true = ANY(m.hits) AND u.hit",
                    merge_params(params, {"indexes": indexes}),
                )
            for i, (sql, extra_params) in (extra_candidates or {}).items():
                cur.execute(
                    "INSERT INTO pb_candidates "  # noqa: S608
                    f"SELECT %(candidate_idx)s, x.customer_id, '{{}}'::jsonb FROM ({sql}) x "
                    "WHERE x.customer_id BETWEEN %(range_lo)s AND %(range_hi)s",
                    merge_params(extra_params, {"candidate_idx": i, "range_lo": lo, "range_hi": hi}),
                )
            # An index and fresh statistics keep every join with the outreach history linear, even
            # when that table's own statistics are stale (e.g. right after a first large run).
            cur.execute("CREATE INDEX ON pb_candidates (customer_id)")
            cur.execute("ANALYZE pb_candidates")
            cur.execute(
                _FIRE,
                {
                    "t": as_of,
                    "tenant": tenant.pk,
                    "budget_statuses": list(BUDGET_STATUSES),
                    "per_days": tenant.budget_per_days,
                    "max_messages": tenant.budget_max_messages,
                    "budget_reason": budget_reason,
                    "lo": lo,
                    "hi": hi,
                },
            )
            rows = cur.fetchall()
            by_id = {str(s.id): s for s in sources}
            sent_ids: list[str] = []
            created_ids: list[str] = []
            for source_id, status, n, ids, all_ids in rows:
                source = by_id[str(source_id)]
                source.counts[status] = source.counts.get(status, 0) + n
                source.counts["fired"] = source.counts.get("fired", 0) + n
                totals[status] = totals.get(status, 0) + n
                totals["fired"] += n
                sent_ids += ids or []
                created_ids += all_ids
            outreach_events_emit(tenant_id=tenant.pk, event_type="outreach.created", outreach_ids=created_ids)
            _deliver_on_commit(tenant, sent_ids)
            timings["firing"] += time.perf_counter() - started
    return {**totals, "seconds": {k: round(v, 4) for k, v in timings.items()}}


def _playbook_source(playbook: Playbook) -> Source:
    return Source(
        kind="pb",
        id=playbook.pk,
        action=action_validate(playbook.action),
        condition=parse_condition(playbook.trigger, "trigger"),
        holdout_percent=playbook.holdout_percent,
        cooldown_days=playbook.cooldown_days,
        review_expiry_hours=playbook.review_expiry_hours,
    )


def playbooks_evaluate(*, tenant: Tenant, as_of: datetime, run: Any = None) -> dict[str, Any]:
    """Fire every enabled playbook of the tenant as of `as_of` (the pipeline's playbook step).

    Returns totals {fired, sent, pending_review, held_out, suppressed}, per-playbook counts
    under "playbooks" (by id), "invalid" (playbooks skipped because their stored trigger or
    action no longer validates) and "seconds" {features, firing}. Safe to run repeatedly and
    concurrently: a repeated run as of the same T fires nothing new.
    """
    sources, invalid = [], {}
    for playbook in Playbook.objects.for_tenant(tenant).filter(enabled=True).order_by("created_at", "id"):
        try:
            sources.append(_playbook_source(playbook))
        except ConditionError as exc:
            invalid[str(playbook.pk)] = str(exc)
    result = fire(tenant=tenant, as_of=as_of, sources=sources)
    result["playbooks"] = {str(s.id): dict(s.counts) for s in sources}
    result["invalid"] = invalid
    log.info(
        "playbooks evaluated tenant=%s as_of=%s run=%s fired=%s",
        tenant.pk,
        as_of.isoformat(),
        getattr(run, "pk", None),
        result["fired"],
    )
    return result
