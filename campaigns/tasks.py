"""Periodic campaign sending and incident notices: a beat tick fans out one task per tenant."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.utils import timezone

from accounts.models import Tenant
from campaigns.campaign_sends import campaigns_send_due, tenants_with_due_campaigns
from campaigns.incidents import incidents_notify, tenants_with_open_incidents

TASK_OPTS: dict[str, Any] = {"ignore_result": True, "acks_late": True}


@shared_task(name="campaigns.schedule_due_campaigns", expires=120, **TASK_OPTS)
def schedule_due_campaigns(**kwargs: Any) -> int:
    tenant_ids = tenants_with_due_campaigns(timezone.now())
    for tenant_id in tenant_ids:
        campaigns_send_due_task.apply_async(args=[tenant_id], expires=600)
    return len(tenant_ids)


@shared_task(name="campaigns.campaigns_send_due", **TASK_OPTS)
def campaigns_send_due_task(tenant_id: int, **kwargs: Any) -> dict[str, Any] | None:
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return None
    return campaigns_send_due(tenant=tenant, as_of=timezone.now())


@shared_task(name="campaigns.schedule_incident_notices", expires=240, **TASK_OPTS)
def schedule_incident_notices(**kwargs: Any) -> int:
    tenant_ids = tenants_with_open_incidents()
    for tenant_id in tenant_ids:
        incidents_notify_task.apply_async(args=[tenant_id], expires=600)
    return len(tenant_ids)


@shared_task(name="campaigns.incidents_notify", **TASK_OPTS)
def incidents_notify_task(tenant_id: int, **kwargs: Any) -> dict[str, Any] | None:
    """Newly affected customers of the tenant's open incidents get the notice (once each)."""
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return None
    return incidents_notify(tenant=tenant, as_of=timezone.now())


# Tasks defined next to their services: imported here so the worker's autodiscovery registers them.
from campaigns.delivery import outreach_deliver_task  # noqa: E402, F401
from campaigns.queue import outreach_expire_overdue_task  # noqa: E402, F401
