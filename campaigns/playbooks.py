"""Playbook writes (create, update, delete) and reads that evaluate a trigger (preview, backtest)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Tenant, User
from accounts.services import audit_record
from campaigns.conditions import (
    Condition,
    columns_for,
    compile_sql,
    condition_metrics,
    parse_condition,
)
from campaigns.models import Playbook
from campaigns.rules import PLAYBOOK_FIELDS, SAMPLE_SIZE, playbook_fields_clean
from proactive.features.compute import feature_session, features_query
from proactive.signal_patterns import patterns_sql
from proactive.sql import merge_params


@transaction.atomic
def playbook_create(*, tenant: Tenant, data: dict[str, Any], actor: User | None = None) -> Playbook:
    clean = playbook_fields_clean({k: v for k, v in data.items() if k in PLAYBOOK_FIELDS})
    playbook = Playbook.objects.create(tenant=tenant, **clean)
    audit_record(
        tenant=tenant, actor=actor, action="playbook.create", target=playbook, data={"name": playbook.name}
    )
    return playbook


@transaction.atomic
def playbook_update(
    *, tenant: Tenant, playbook: Playbook, data: dict[str, Any], actor: User | None = None
) -> Playbook:
    clean = playbook_fields_clean({k: v for k, v in data.items() if k in PLAYBOOK_FIELDS})
    for name, value in clean.items():
        setattr(playbook, name, value)
    playbook.updated_at = timezone.now()
    playbook.save(update_fields=[*clean, "updated_at"])
    audit_record(
        tenant=tenant, actor=actor, action="playbook.update", target=playbook, data={"fields": sorted(clean)}
    )
    return playbook


@transaction.atomic
def playbook_delete(*, tenant: Tenant, playbook: Playbook, actor: User | None = None) -> None:
    """Outreach keeps its rows (playbook set to NULL) so history and effectiveness stay readable."""
    audit_record(
        tenant=tenant, actor=actor, action="playbook.delete", target=playbook, data={"name": playbook.name}
    )
    Playbook.objects.for_tenant(tenant).filter(pk=playbook.pk).delete()


def matching_sql(
    *, tenant: Tenant, as_of: datetime, condition: Condition, id_range: tuple[int, int] | None = None
) -> tuple[str, dict[str, Any]]:
    """`SELECT f.customer_id FROM (features) f WHERE <condition>` as of `as_of`, with its named
    parameters (`proactive.sql`: merge an outer statement's with `merge_params`)."""
    metrics = condition_metrics(condition)
    feat_sql, feat_params, _ = features_query(
        tenant_id=tenant.pk, as_of=as_of, metrics=metrics, id_range=id_range
    )
    where, where_params = compile_sql(condition, columns_for(metrics))
    return f"SELECT f.customer_id FROM ({feat_sql}) f WHERE {where}", merge_params(feat_params, where_params)  # noqa: S608


def playbook_preview(
    *, tenant: Tenant, trigger: Any, as_of: datetime | None = None, sample_size: int = SAMPLE_SIZE
) -> dict[str, Any]:
    """How many customers match now, and a sample of their external ids."""
    condition = parse_condition(trigger, "trigger")
    as_of = as_of or timezone.now()
    sql, params = matching_sql(tenant=tenant, as_of=as_of, condition=condition)
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT count(*) OVER (), c.external_id FROM ({sql}) m "  # noqa: S608
            "JOIN proactive_customer c ON c.id = m.customer_id AND c.tenant_id = %(tenant_id)s "
            "ORDER BY c.external_id LIMIT %(sample_size)s",
            merge_params(params, {"tenant_id": tenant.pk, "sample_size": sample_size}),
        )
        rows = cur.fetchall()
    return {"matching": rows[0][0] if rows else 0, "sample": [r[1] for r in rows]}


def playbook_backtest(
    *,
    tenant: Tenant,
    trigger: Any,
    days: int = 14,
    window_days: int | None = None,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """As of each of the last `days` days: whom the trigger matched, and how many of them
    contacted support in [day, day + window). Precision is pooled over days whose window has
    fully elapsed; `base_rate` is the share of all customers who contacted in the same windows.

    The contacts of all days come from one scan into a temp table, and each day's features are
    materialised (and analysed) before they are joined. Before, a correlated EXISTS per customer
    checked contacts; with the statistics of a freshly loaded tenant the planner ran it through
    the tenant-only index, reading all of the tenant's signals once per customer (103 s per day
    on 2,000 demo customers; 809 s for a 14-day backtest)."""
    condition = parse_condition(trigger, "trigger")
    as_of = as_of or timezone.now()
    window = timedelta(days=window_days or tenant.horizon_days)
    metrics = condition_metrics(condition)
    where, where_params = compile_sql(condition, columns_for(metrics, "g"))
    contact, contact_params = patterns_sql(tenant.contact_signals, "s.name", "contact")
    first_day = as_of - timedelta(days=days)
    rows = []
    with feature_session() as cur:
        cur.execute("DROP TABLE IF EXISTS bt_contacts, bt_features")
        cur.execute(
            "CREATE TEMP TABLE bt_contacts ON COMMIT DROP AS "  # noqa: S608
            "SELECT s.customer_id, s.timestamp FROM proactive_signal s "
            "WHERE s.tenant_id = %(tenant_id)s AND s.timestamp >= %(first_day)s AND s.timestamp < %(end)s "
            f"AND {contact}",
            merge_params(
                {"tenant_id": tenant.pk, "first_day": first_day, "end": as_of - timedelta(days=1) + window},
                contact_params,
            ),
        )
        cur.execute("ANALYZE bt_contacts")
        for back in range(days, 0, -1):
            day = as_of - timedelta(days=back)
            feat_sql, feat_params, _ = features_query(tenant_id=tenant.pk, as_of=day, metrics=metrics)
            cur.execute("DROP TABLE IF EXISTS bt_features")
            cur.execute(f"CREATE TEMP TABLE bt_features ON COMMIT DROP AS {feat_sql}", feat_params)
            cur.execute("ANALYZE bt_features")
            cur.execute(
                f"SELECT count(*) FILTER (WHERE {where}), count(*) FILTER (WHERE {where} AND g.contacted), "  # noqa: S608
                "count(*), count(*) FILTER (WHERE g.contacted) FROM ("
                "  SELECT f.*, k.customer_id IS NOT NULL AS contacted FROM bt_features f LEFT JOIN ("
                "    SELECT DISTINCT customer_id FROM bt_contacts "
                "WHERE timestamp >= %(day)s AND timestamp < %(day_end)s"
                "  ) k ON k.customer_id = f.customer_id) g",
                merge_params(where_params, {"day": day, "day_end": day + window}),
            )
            matched, hits, customers, contacted = cur.fetchone()
            rows.append(
                {
                    "as_of": day.isoformat(),
                    "matched": matched,
                    "contacted": hits,
                    "precision": hits / matched if matched else None,
                    "customers": customers,
                    "base_rate": contacted / customers if customers else None,
                    "complete": day + window <= as_of,
                }
            )
        cur.execute("DROP TABLE IF EXISTS bt_contacts, bt_features")
    done = [r for r in rows if r["complete"]]
    matched = sum(r["matched"] for r in done)
    hits = sum(r["contacted"] for r in done)
    customers = sum(r["customers"] for r in done)
    base = sum(round((r["base_rate"] or 0) * r["customers"]) for r in done)
    return {
        "window_days": window.days,
        "days": rows,
        "matched": matched,
        "contacted": hits,
        "precision": hits / matched if matched else None,
        "base_rate": base / customers if customers else None,
    }
