from django.contrib import admin

from accounts.admin_base import ReadOnlyTenantAdmin, TenantScopedAdmin
from campaigns.models import Campaign, Incident, Outreach, Playbook


@admin.register(Playbook)
class PlaybookAdmin(TenantScopedAdmin):
    list_display = ["name", "tenant", "enabled", "cooldown_days", "holdout_percent"]
    list_filter = ["enabled"]


@admin.register(Campaign)
class CampaignAdmin(TenantScopedAdmin):
    list_display = ["name", "tenant", "status", "send_at", "audience_size"]


@admin.register(Incident)
class IncidentAdmin(TenantScopedAdmin):
    list_display = ["component", "title", "tenant", "status", "opened_at", "resolved_at"]


@admin.register(Outreach)
class OutreachAdmin(ReadOnlyTenantAdmin):
    list_display = ["title", "tenant", "status", "holdout", "triggered_at", "sent_at"]
    list_filter = ["status", "holdout"]
    raw_id_fields = ["customer"]
