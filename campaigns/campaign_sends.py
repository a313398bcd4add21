"""Campaigns: creation and sending when due (audience frozen at send time)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction

from accounts.models import Tenant, User
from accounts.services import audit_record
from campaigns.conditions import (
    ConditionError,
    parse_condition,
)
from campaigns.firing import Source, fire
from campaigns.models import Campaign, Outreach
from campaigns.rules import HOLDOUT_PERCENT, action_validate

log = logging.getLogger(__name__)


@transaction.atomic
def campaign_create(*, tenant: Tenant, data: dict[str, Any], actor: User | None = None) -> Campaign:
    parse_condition(data["audience"], "audience")
    HOLDOUT_PERCENT.check(data.get("holdout_percent", 10))
    campaign = Campaign.objects.create(
        tenant=tenant,
        name=data["name"],
        audience=data["audience"],
        action=action_validate(data["action"]),
        send_at=data["send_at"],
        holdout_percent=int(data.get("holdout_percent", 10)),
    )
    audit_record(
        tenant=tenant, actor=actor, action="campaign.create", target=campaign, data={"name": campaign.name}
    )
    return campaign


def campaigns_send_due(*, tenant: Tenant, as_of: datetime) -> dict[str, Any]:
    """Send the tenant's campaigns whose send_at <= as_of: the audience is evaluated once, as of
    as_of, and frozen in the outreach rows (a campaign is never re-evaluated once sent).

    A campaign is claimed with a conditional update (scheduled -> sending); one left in
    `sending` by a crash is resumed, and the dedupe keys make the resumption exact.
    Returns {"campaigns": n, "fired", "sent", "held_out", "suppressed", ...}.
    """
    due = list(
        Campaign.objects.for_tenant(tenant)
        .filter(status__in=[Campaign.Status.SCHEDULED, Campaign.Status.SENDING], send_at__lte=as_of)
        .order_by("send_at", "id")
    )
    totals: dict[str, Any] = {
        "campaigns": 0,
        "fired": 0,
        "sent": 0,
        "pending_review": 0,
        "held_out": 0,
        "suppressed": 0,
    }
    for campaign in due:
        if campaign.status == Campaign.Status.SCHEDULED:
            claimed = (
                Campaign.objects.for_tenant(tenant)
                .filter(pk=campaign.pk, status=Campaign.Status.SCHEDULED)
                .update(status=Campaign.Status.SENDING)
            )
            if not claimed:
                continue
        try:
            source = Source(
                kind="cmp",
                id=campaign.pk,
                action=action_validate(campaign.action),
                condition=parse_condition(campaign.audience, "audience"),
                holdout_percent=campaign.holdout_percent,
            )
        except ConditionError as exc:
            log.warning("campaign %s not sent: %s", campaign.pk, exc)
            Campaign.objects.for_tenant(tenant).filter(pk=campaign.pk).update(
                status=Campaign.Status.CANCELLED
            )
            continue
        result = fire(tenant=tenant, as_of=as_of, sources=[source])
        size = Outreach.objects.for_tenant(tenant).filter(campaign=campaign).count()
        Campaign.objects.for_tenant(tenant).filter(pk=campaign.pk, status=Campaign.Status.SENDING).update(
            status=Campaign.Status.SENT, sent_at=as_of, audience_size=size
        )
        totals["campaigns"] += 1
        for key in ("fired", "sent", "pending_review", "held_out", "suppressed"):
            totals[key] += result[key]
    return totals


def tenants_with_due_campaigns(as_of: datetime) -> list[int]:
    """Cross-tenant scheduler query: tenants that have a campaign due."""
    return sorted(
        set(
            Campaign.objects.unscoped()
            .filter(status__in=[Campaign.Status.SCHEDULED, Campaign.Status.SENDING], send_at__lte=as_of)
            .values_list("tenant_id", flat=True)
        )
    )
