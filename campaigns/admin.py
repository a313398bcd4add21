from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, JsonResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST
from rest_framework.exceptions import ParseError

from accounts.admin_base import ReadOnlyTenantAdmin, TenantScopedAdmin, admin_tenant_ids
from accounts.api_parsers import loads_limited
from accounts.models import Tenant
from campaigns.conditions import ConditionError, parse_condition, render_text
from campaigns.models import Campaign, Incident, Outreach, Playbook
from campaigns.playbooks import playbook_preview
from campaigns.rules import COOLDOWN_DAYS, HOLDOUT_PERCENT, PLAYBOOK_FIELDS, Bound, action_validate


def _condition(value: Any, path: str) -> Any:
    try:
        parse_condition(value, path)
    except ConditionError as exc:
        raise forms.ValidationError(str(exc)) from None
    return value


def _action(value: Any, path: str) -> dict[str, Any]:
    try:
        return action_validate(value, path)
    except ConditionError as exc:
        raise forms.ValidationError(str(exc)) from None


def _bounded(bound: Bound, value: Any) -> int:
    try:
        return bound.check(value)
    except ConditionError as exc:
        raise forms.ValidationError(str(exc)) from None


class LimitedJSONField(forms.JSONField):
    """The admin's JSON fields with the API's nesting limit: a 100,000-deep value is a form error,
    not a RecursionError."""

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and value.strip() and not self.disabled:
            try:
                loads_limited(value)
            except ParseError as exc:
                raise forms.ValidationError(str(exc.detail)) from None
        return super().to_python(value)


JSON_FIELDS = dict.fromkeys(
    ("trigger", "action", "audience", "affected", "notice", "follow_up"), LimitedJSONField
)


class PlaybookForm(forms.ModelForm):
    """Trigger and action are validated like the API does; errors name the bad part."""

    class Meta:
        model = Playbook
        field_classes = JSON_FIELDS
        fields = ["tenant", *PLAYBOOK_FIELDS]

    def clean_trigger(self) -> Any:
        return _condition(self.cleaned_data["trigger"], "trigger")

    def clean_action(self) -> dict[str, Any]:
        return _action(self.cleaned_data["action"], "action")

    def clean_holdout_percent(self) -> int:
        return _bounded(HOLDOUT_PERCENT, self.cleaned_data["holdout_percent"])

    def clean_cooldown_days(self) -> int:
        return _bounded(COOLDOWN_DAYS, self.cleaned_data["cooldown_days"])


class CampaignForm(forms.ModelForm):
    class Meta:
        model = Campaign
        field_classes = JSON_FIELDS
        fields = ["tenant", "name", "audience", "action", "send_at", "holdout_percent", "status"]

    def clean_holdout_percent(self) -> int:
        return _bounded(HOLDOUT_PERCENT, self.cleaned_data["holdout_percent"])

    def clean_audience(self) -> Any:
        return _condition(self.cleaned_data["audience"], "audience")

    def clean_action(self) -> dict[str, Any]:
        return _action(self.cleaned_data["action"], "action")


class IncidentForm(forms.ModelForm):
    class Meta:
        model = Incident
        field_classes = JSON_FIELDS
        fields = [
            "tenant",
            "component",
            "title",
            "affected",
            "notice",
            "follow_up",
            "overrides_budget",
            "status",
        ]

    def clean_affected(self) -> Any:
        return _condition(self.cleaned_data["affected"], "affected")

    def clean_notice(self) -> dict[str, Any]:
        return _action({**self.cleaned_data["notice"], "requires_review": False}, "notice")

    def clean_follow_up(self) -> dict[str, Any] | None:
        value = self.cleaned_data.get("follow_up")
        return _action({**value, "requires_review": False}, "follow_up") if value else None


def _preview_text(playbook: Playbook) -> str:
    try:
        result = playbook_preview(tenant=playbook.tenant, trigger=playbook.trigger)
    except ConditionError as exc:
        return f"invalid trigger: {exc}"
    sample = ", ".join(result["sample"][:5])
    return f"{result['matching']} customers match now" + (f" (e.g. {sample})" if sample else "")


@admin.register(Playbook)
class PlaybookAdmin(TenantScopedAdmin):
    form = PlaybookForm
    list_display = ["name", "tenant", "enabled", "trigger_text", "cooldown_days", "holdout_percent"]
    list_filter = ["enabled"]
    readonly_fields = ["trigger_text", "preview"]

    class Media:
        js = ["js/admin_preview.js"]

    def get_urls(self) -> list[URLPattern]:
        # Before the inherited routes: "<path:object_id>/" would otherwise swallow "preview/".
        view = self.admin_site.admin_view(require_POST(self.preview_view))
        return [path("preview/", view, name="campaigns_playbook_preview"), *super().get_urls()]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        trigger = form.base_fields.get("trigger")
        if trigger is not None:  # the "Preview matches" button (admin_preview.js) posts here
            trigger.widget.attrs["data-preview-url"] = reverse("admin:campaigns_playbook_preview")
            if obj is not None:  # the tenant is read-only on the change page: no field to read it from
                trigger.widget.attrs["data-tenant"] = str(obj.tenant_id)
        return form

    def preview_view(self, request: HttpRequest) -> JsonResponse:
        """Preview an unsaved trigger from the add/change form, for a tenant the user administers.

        The form's tenant comes from the browser, so it is checked here: an id outside the
        user's admin tenants is a 404, exactly like a tenant that does not exist.
        """
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            return JsonResponse({"error": "permission denied"}, status=403)
        raw_tenant = request.POST.get("tenant", "").strip()
        if not raw_tenant:
            return JsonResponse({"error": "tenant: choose a tenant first"}, status=400)
        tenants = Tenant.objects.all()
        if not request.user.is_superuser:
            tenants = tenants.filter(pk__in=admin_tenant_ids(request))
        tenant = tenants.filter(pk=int(raw_tenant)).first() if raw_tenant.isdigit() else None
        if tenant is None:
            return JsonResponse({"error": "tenant: not found"}, status=404)
        try:
            trigger = loads_limited(request.POST.get("trigger", ""))
        except ParseError as exc:
            detail = "nested too deeply" if "nested" in str(exc.detail) else "not valid JSON"
            return JsonResponse({"error": f"trigger: {detail}"}, status=400)
        try:
            result = playbook_preview(tenant=tenant, trigger=trigger)
        except ConditionError as exc:
            return JsonResponse({"error": str(exc)}, status=400)
        return JsonResponse(result)

    @admin.display(description="Trigger in words")
    def trigger_text(self, obj: Playbook) -> str:
        try:
            return render_text(parse_condition(obj.trigger, "trigger"))
        except ConditionError as exc:
            return f"invalid: {exc}"

    @admin.display(description="Preview (as of now)")
    def preview(self, obj: Playbook | None) -> str:
        if obj is None or obj.pk is None or obj._state.adding:
            return "Save to see how many customers match."
        return format_html("<strong>{}</strong>", _preview_text(obj))

    def save_model(self, request: HttpRequest, obj: Playbook, form: Any, change: bool) -> None:
        obj.updated_at = timezone.now()
        super().save_model(request, obj, form, change)
        self.message_user(request, f"Preview of “{obj.name}”: {_preview_text(obj)}.", messages.INFO)


@admin.register(Campaign)
class CampaignAdmin(TenantScopedAdmin):
    form = CampaignForm
    list_display = ["name", "tenant", "status", "send_at", "audience_size"]


@admin.register(Incident)
class IncidentAdmin(TenantScopedAdmin):
    form = IncidentForm
    list_display = ["component", "title", "tenant", "status", "opened_at", "resolved_at"]


@admin.register(Outreach)
class OutreachAdmin(ReadOnlyTenantAdmin):
    list_display = ["title", "tenant", "status", "holdout", "triggered_at", "sent_at"]
    list_filter = ["status", "holdout"]
    raw_id_fields = ["customer"]
