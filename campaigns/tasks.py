"""Periodic campaign sending and incident notices: a beat tick fans out one task per tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

from accounts.models import Tenant
from campaigns.campaign_sends import campaigns_send_due, tenants_with_due_campaigns
from campaigns.incidents import incidents_notify, tenants_with_open_incidents
from campaigns.monitoring import (
    history_refresh,
    history_refresh_due,
    monitor_run,
    monitor_window_key,
    tenants_monitored,
)

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


@shared_task(name="campaigns.schedule_monitoring", expires=240, **TASK_OPTS)
def schedule_monitoring(**kwargs: Any) -> int:
    """Every tenant, once per 5-minute window: the window key makes a second beat's copy a no-op.
    A tenant whose sliding history is due its daily full reread gets that as a separate task, so
    the detector's runs stay short."""
    now = timezone.now()
    tenants = tenants_monitored()
    for tenant in tenants:
        if history_refresh_due(tenant=tenant, as_of=now) and cache.add(
            f"monitor-history-refresh:{tenant.pk}", 1, timeout=600
        ):
            monitor_history_refresh_task.apply_async(
                kwargs={"tenant_id": tenant.pk, "as_of": now.isoformat()}, expires=600
            )
        monitor_run_task.apply_async(
            kwargs={"tenant_id": tenant.pk, "as_of": now.isoformat(), "window_key": monitor_window_key(now)},
            expires=600,
        )
    return len(tenants)


@shared_task(name="campaigns.monitor_history_refresh", **TASK_OPTS)
def monitor_history_refresh_task(*, tenant_id: int, as_of: str, **kwargs: Any) -> float | None:
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return None
    return history_refresh(tenant=tenant, as_of=datetime.fromisoformat(as_of))


@shared_task(name="campaigns.monitor_run", **TASK_OPTS)
def monitor_run_task(*, tenant_id: int, as_of: str, window_key: str, **kwargs: Any) -> dict[str, Any] | None:
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return None
    return monitor_run(
        tenant=tenant, as_of=datetime.fromisoformat(as_of), trigger="schedule", window_key=window_key
    )


# Tasks defined next to their services: imported here so the worker's autodiscovery registers them.
from campaigns.delivery import outreach_deliver_task  # noqa: E402, F401
from campaigns.queue import outreach_expire_overdue_task  # noqa: E402, F401
