"""The contact budget: which outreach uses it, and how close each customer is to the cap.

A customer may get `tenant.budget_max_messages` per `tenant.budget_per_days` across playbooks,
campaigns and incidents. Outreach triggered in the window that is sent, held out (held-out
customers use the budget like treated ones, so both arms are alike) or waiting for review
uses it. The firing engine enforces the cap with these statuses; the fatigue page reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, Max, Min, Q

from accounts.models import Tenant
from campaigns.models import Outreach
from proactive.models import Customer

BUDGET_STATUSES = ("sent", "held_out", "pending_review", "snoozed")


def _fetch(sql: str, params: list[Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@dataclass
class Fatigue:
    max_messages: int
    per_days: int
    customers: int
    window_counts: dict[int, int]
    weekly_counts: dict[int, int]
    weeks: int
    suppressed: int
    nearest: list[dict]

    @property
    def at_budget(self) -> int:
        return sum(n for k, n in self.window_counts.items() if k >= self.max_messages)


def fatigue_get(
    *, tenant: Tenant, now: datetime, weeks: int = 8, top: int = 25, suppressed_days: int = 28
) -> Fatigue:
    """Messages per customer in the budget window and per week, and who is closest to the cap."""
    table = Outreach._meta.db_table
    per_days = tenant.budget_per_days
    window_start = now - timedelta(days=per_days)
    customers = Customer.objects.for_tenant(tenant).count()
    window_rows = _fetch(
        f"""
        SELECT n, COUNT(*) FROM (
            SELECT customer_id, COUNT(*) AS n FROM {table}
            WHERE tenant_id = %s AND status = ANY(%s) AND triggered_at > %s AND triggered_at <= %s
            GROUP BY customer_id
        ) x GROUP BY n ORDER BY n
        """,  # noqa: S608
        [tenant.pk, list(BUDGET_STATUSES), window_start, now],
    )
    weekly_rows = _fetch(
        f"""
        SELECT n, COUNT(*) FROM (
            SELECT customer_id, FLOOR(EXTRACT(EPOCH FROM (%s - sent_at)) / 604800) AS w, COUNT(*) AS n
            FROM {table}
            WHERE tenant_id = %s AND sent_at > %s AND sent_at <= %s GROUP BY customer_id, w
        ) x GROUP BY n ORDER BY n
        """,  # noqa: S608
        [now, tenant.pk, now - timedelta(weeks=weeks), now],
    )
    window_counts = {int(n): c for n, c in window_rows}
    window_counts[0] = customers - sum(window_counts.values())
    weekly_counts = {int(n): c for n, c in weekly_rows}
    weekly_counts[0] = customers * weeks - sum(weekly_counts.values())
    nearest: list[dict[str, Any]] = [
        dict(row)
        for row in Outreach.objects.for_tenant(tenant)
        .filter(status__in=BUDGET_STATUSES, triggered_at__gt=window_start, triggered_at__lte=now)
        .values("customer__external_id", "customer__name")
        .annotate(
            n=Count("id"),
            sent=Count("id", filter=Q(status=Outreach.Status.SENT)),
            first=Min("triggered_at"),
            last=Max("triggered_at"),
        )
        .order_by("-n", "-last")[:top]
    ]
    for row in nearest:
        row["frees_at"] = row["first"] + timedelta(days=per_days)
    suppressed = (
        Outreach.objects.for_tenant(tenant)
        .filter(status=Outreach.Status.SUPPRESSED, triggered_at__gt=now - timedelta(days=suppressed_days))
        .count()
    )
    return Fatigue(
        max_messages=tenant.budget_max_messages,
        per_days=per_days,
        customers=customers,
        window_counts=dict(sorted(window_counts.items())),
        weekly_counts=dict(sorted(weekly_counts.items())),
        weeks=weeks,
        suppressed=suppressed,
        nearest=nearest,
    )
