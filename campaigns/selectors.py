"""Reads for playbooks, campaigns, incidents and outreach (always for one tenant)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.db.models import Count, QuerySet

from accounts.models import Tenant
from campaigns.models import Campaign, Incident, Outreach, Playbook


def playbook_list(*, tenant: Tenant) -> QuerySet[Playbook]:
    return Playbook.objects.for_tenant(tenant).order_by("name")


def playbook_get(*, tenant: Tenant, playbook_id: uuid.UUID | str) -> Playbook | None:
    return Playbook.objects.for_tenant(tenant).filter(pk=playbook_id).first()


def campaign_get(*, tenant: Tenant, campaign_id: uuid.UUID | str) -> Campaign | None:
    return Campaign.objects.for_tenant(tenant).filter(pk=campaign_id).first()


def incident_get(*, tenant: Tenant, incident_id: uuid.UUID | str) -> Incident | None:
    return Incident.objects.for_tenant(tenant).filter(pk=incident_id).first()


def outreach_status_counts(
    *, tenant: Tenant, campaign_ids: Iterable[Any] = (), incident_ids: Iterable[Any] = ()
) -> dict[str, dict[str, int]]:
    """{source id: {status: n}} for campaigns or incidents, in one query."""
    campaign_ids, incident_ids = list(campaign_ids), list(incident_ids)
    counts: dict[str, dict[str, int]] = {str(i): {} for i in [*campaign_ids, *incident_ids]}
    for column, ids in (("campaign", campaign_ids), ("incident", incident_ids)):
        if not ids:
            continue
        rows = (
            Outreach.objects.for_tenant(tenant)
            .filter(**{f"{column}__in": ids})
            .values(column, "status")
            .annotate(n=Count("id"))
            .order_by()
        )
        for row in rows:
            counts[str(row[column])][row["status"]] = row["n"]
    return counts


def outreach_list(
    *,
    tenant: Tenant,
    playbook: str | None = None,
    campaign: str | None = None,
    status: str | None = None,
    customer: str | None = None,
) -> QuerySet[Outreach]:
    """Filters of `GET /api/v1/outreach`: ids are UUIDs, `customer` an external_id."""
    qs = Outreach.objects.for_tenant(tenant).select_related("customer")
    if playbook:
        qs = qs.filter(playbook_id=playbook)
    if campaign:
        qs = qs.filter(campaign_id=campaign)
    if status:
        qs = qs.filter(status=status)
    if customer:
        qs = qs.filter(customer__external_id=customer, customer__tenant=tenant)
    return qs
