from __future__ import annotations

from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet

from accounts.models import Tenant
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

LOG_SIZE = 50


def endpoint_list(*, tenant: Tenant) -> QuerySet[WebhookEndpoint]:
    """Subscriptions with their delivery counts by status (one query)."""
    return (
        WebhookEndpoint.objects.for_tenant(tenant)
        .annotate(
            delivered=Count("deliveries", filter=Q(deliveries__status=WebhookDelivery.Status.SUCCEEDED)),
            failed=Count("deliveries", filter=Q(deliveries__status=WebhookDelivery.Status.FAILED)),
            waiting=Count(
                "deliveries",
                filter=Q(
                    deliveries__status__in=[WebhookDelivery.Status.PENDING, WebhookDelivery.Status.DELIVERING]
                ),
            ),
        )
        .order_by("-created_at", "id")
    )


def endpoint_get(*, tenant: Tenant, endpoint_id: Any) -> WebhookEndpoint | None:
    return WebhookEndpoint.objects.for_tenant(tenant).filter(pk=endpoint_id).first()


def delivery_log(*, tenant: Tenant, endpoint: WebhookEndpoint, status: str = "") -> list[WebhookDelivery]:
    """The latest deliveries of a subscription, each with its attempts (two queries)."""
    qs = WebhookDelivery.objects.for_tenant(tenant).filter(endpoint=endpoint)
    if status in WebhookDelivery.Status.values:
        qs = qs.filter(status=status)
    attempts = WebhookAttempt.objects.for_tenant(tenant).order_by("number")
    return list(
        qs.order_by("-created_at", "-id").prefetch_related(Prefetch("attempt_log", queryset=attempts))[
            :LOG_SIZE
        ]
    )
