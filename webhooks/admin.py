from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from accounts.admin_base import ReadOnlyTenantAdmin, TenantScopedAdmin
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(TenantScopedAdmin):
    """Created through the API or the tenant page (URL check, one-time secret); here only
    switched on or off (deleting, with its log, is on the page and the API). The secret is never shown."""

    list_display = ("url", "tenant", "enabled", "failure_streak", "created_at")
    list_filter = ("enabled",)
    fields = ("tenant", "url", "events", "enabled", "failure_streak", "failing_since", "disabled_at",
              "disabled_reason", "created_by", "created_at")  # fmt: skip
    readonly_fields = ("tenant", "url", "events", "failure_streak", "failing_since", "disabled_at",
                       "disabled_reason", "created_by", "created_at")  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ("number", "started_at", "finished_at", "succeeded", "status_code", "latency_ms", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> Any:
        # The formset narrows it to the delivery, which the admin already scoped to the tenant.
        return WebhookAttempt.objects.unscoped()


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyTenantAdmin):
    """The delivery log, read-only."""

    list_display = ("event_type", "endpoint", "status", "attempts", "last_status_code", "created_at")
    list_filter = ("status", "event_type")
    list_select_related = ("endpoint",)
    inlines = [WebhookAttemptInline]
    readonly_fields = ("tenant", "endpoint", "event_type", "event_key", "payload", "status", "attempts",
                       "next_attempt_at", "last_status_code", "last_latency_ms", "last_error", "delivered_at",
                       "created_at")  # fmt: skip
    fields = readonly_fields
