from typing import Any

from django import forms
from django.contrib import admin
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.admin_base import ReadOnlyTenantAdmin, TenantScopedAdmin
from proactive.ingest import attributes_changed_record
from proactive.models import Customer, PipelineRun, RiskModel


class CustomerForm(forms.ModelForm):
    def clean_attributes(self) -> dict:
        attributes = self.cleaned_data.get("attributes")
        if attributes in (None, ""):
            return {}
        if not isinstance(attributes, dict):
            raise forms.ValidationError('Attributes must be a JSON object, e.g. {"plan": "pro"}.')
        return attributes


@admin.register(Customer)
class CustomerAdmin(TenantScopedAdmin):
    form = CustomerForm
    list_display = ["external_id", "name", "email", "tenant", "signed_up_at"]
    search_fields = ["external_id", "name", "email"]

    def save_model(self, request: HttpRequest, obj: Customer, form: Any, change: bool) -> None:
        """An edit of the attributes goes into their history, as an upsert's would (the model
        reads attributes as of each cut-off from it)."""
        before = Customer.objects.for_tenant(obj.tenant_id).get(pk=obj.pk).attributes if change else {}
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            attributes_changed_record(
                customer=obj, before=before or {}, after=obj.attributes or {}, now=timezone.now()
            )


@admin.register(RiskModel)
class RiskModelAdmin(ReadOnlyTenantAdmin):
    list_display = ["version", "tenant", "status", "target", "horizon_days", "trained_at", "training_rows"]
    exclude = ["booster"]


@admin.register(PipelineRun)
class PipelineRunAdmin(ReadOnlyTenantAdmin):
    list_display = ["started_at", "tenant", "kind", "status", "as_of", "finished_at"]
    list_filter = ["status", "kind"]
