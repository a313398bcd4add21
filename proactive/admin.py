from django.contrib import admin

from accounts.admin_base import ReadOnlyTenantAdmin, TenantScopedAdmin
from proactive.models import Customer, PipelineRun, RiskModel


@admin.register(Customer)
class CustomerAdmin(TenantScopedAdmin):
    list_display = ["external_id", "name", "email", "tenant", "signed_up_at"]
    search_fields = ["external_id", "name", "email"]


@admin.register(RiskModel)
class RiskModelAdmin(ReadOnlyTenantAdmin):
    list_display = ["version", "tenant", "status", "target", "horizon_days", "trained_at", "training_rows"]
    exclude = ["booster"]


@admin.register(PipelineRun)
class PipelineRunAdmin(ReadOnlyTenantAdmin):
    list_display = ["started_at", "tenant", "kind", "status", "as_of", "finished_at"]
    list_filter = ["status", "kind"]
