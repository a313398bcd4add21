"""Webhook subscriptions, the deliveries owed to them (one per event and subscription) and
every attempt made at a delivery."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.scoping import TenantOwned


class WebhookEndpoint(TenantOwned):
    """A tenant's subscription: where to POST which events, signed with `secret`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    url = models.URLField(max_length=500)
    events = models.JSONField(default=list, help_text="Event types, e.g. outreach.sent.")
    # Kept in clear: every delivery is signed with it (HMAC needs the key itself).
    secret = models.CharField(max_length=100)
    enabled = models.BooleanField(default=True)
    failure_streak = models.PositiveIntegerField(
        default=0, help_text="Failed attempts since the last successful one."
    )
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["tenant", "created_at"], name="webhookendpoint_tenant")]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(TenantOwned):
    """One event owed to one subscription. `payload` is the body; `webhook_id` never changes,
    so every retry of it carries the same `webhook-id` header."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERING = "delivering", "Delivering"
        SUCCEEDED = "succeeded", "Delivered"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    event_type = models.CharField(max_length=40)
    event_key = models.CharField(max_length=200, help_text="The event's identity: one delivery per key.")
    payload = models.JSONField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "endpoint", "event_key"], name="webhookdelivery_once_per_endpoint"
            )
        ]
        indexes = [
            models.Index(fields=["tenant", "endpoint", "-created_at"], name="webhookdelivery_log"),
            # The sweeper's scan: only unfinished rows are indexed.
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status__in=["pending", "delivering"]),
                name="webhookdelivery_unfinished",
            ),
        ]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event_type} -> {self.endpoint_id} ({self.status})"

    @property
    def webhook_id(self) -> str:
        return f"msg_{self.id.hex}"


class WebhookAttempt(TenantOwned):
    """One HTTP attempt; `succeeded` is None while in flight, or when the worker died during it."""

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log", db_index=False
    )
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    succeeded = models.BooleanField(null=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "delivery", "number"], name="webhookattempt_number_uniq"
            )
        ]
        ordering = ["number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"
