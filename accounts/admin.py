from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.http import HttpRequest

from accounts.admin_base import ReadOnlyTenantAdmin, TenantScopedAdmin, admin_tenant_ids
from accounts.api import TenantSettingsSerializer, tenant_settings
from accounts.models import ApiKey, AuditLog, Membership, Tenant, User
from accounts.services import TenantSlugReserved, api_key_create, api_key_revoke, tenant_slug_check


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "first_name", "last_name", "is_staff", "is_superuser"]
    search_fields = ["email", "first_name", "last_name"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser


# Admin form field -> where the same value sits in the API's settings shape.
_SETTINGS_PATHS = {
    "name": ("name",),
    "timezone": ("timezone",),
    "contact_signals": ("contact_signals",),
    "allowed_origins": ("allowed_origins",),
    "prediction_target": ("prediction", "target"),
    "activity_signals": ("prediction", "activity_signals"),
    "horizon_days": ("prediction", "horizon_days"),
    "numeric_properties": ("prediction", "numeric_properties"),
    "budget_max_messages": ("contact_budget", "max_messages"),
    "budget_per_days": ("contact_budget", "per_days"),
}


def _messages(errors: Any) -> list[str]:
    """The plain messages of a serializer's errors for one field: a list field's per-item errors
    come as {index: [...]}, which would otherwise render as Python reprs."""
    if isinstance(errors, dict):
        return [m for value in errors.values() for m in _messages(value)]
    if isinstance(errors, list):
        return [m for value in errors for m in _messages(value)]
    return [str(errors)]


class TenantForm(forms.ModelForm):
    """Validated by the API's TenantSettingsSerializer (one set of rules for both), plus the
    reserved slugs that tenant_create refuses."""

    class Meta:
        model = Tenant
        fields = [
            "name",
            "slug",
            "timezone",
            "prediction_target",
            "contact_signals",
            "activity_signals",
            "horizon_days",
            "numeric_properties",
            "budget_max_messages",
            "budget_per_days",
            "scoring_interval_minutes",
            "training_interval_days",
            "allowed_origins",
        ]

    def clean_numeric_properties(self) -> list:
        return self.cleaned_data.get("numeric_properties") or []  # an empty box declares none

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        if self.instance.pk is None or slug != self.instance.slug:
            try:
                tenant_slug_check(slug)
            except TenantSlugReserved as exc:
                raise forms.ValidationError(str(exc)) from None
        return slug

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        shape = tenant_settings(self.instance)
        present = [f for f in _SETTINGS_PATHS if f in self.fields and f not in self.errors]
        for field in present:
            *parents, leaf = _SETTINGS_PATHS[field]
            target = shape
            for part in parents:
                target = target[part]
            target[leaf] = data.get(field)
        serializer = TenantSettingsSerializer(data=shape)
        if serializer.is_valid():
            valid = serializer.validated_data
            for field in present:
                value: Any = valid
                for part in _SETTINGS_PATHS[field]:
                    value = value[part]
                data[field] = value
            return data
        for field in present:
            errors: Any = serializer.errors
            for part in _SETTINGS_PATHS[field]:
                errors = errors.get(part) if isinstance(errors, dict) else None
            if errors:
                self.add_error(field, _messages(errors))
        return data


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    form = TenantForm
    list_display = ["name", "slug", "prediction_target", "horizon_days", "scoring_interval_minutes"]
    search_fields = ["name", "slug"]
    readonly_fields = ["publishable_key", "identity_secret", "created_at"]
    fieldsets = (
        (None, {"fields": ("name", "slug", "timezone")}),
        (
            "Prediction",
            {
                "fields": (
                    "prediction_target",
                    "contact_signals",
                    "activity_signals",
                    "horizon_days",
                    "numeric_properties",
                )
            },
        ),
        ("Contact budget", {"fields": ("budget_max_messages", "budget_per_days")}),
        ("Schedule", {"fields": ("scoring_interval_minutes", "training_interval_days")}),
        ("Widget", {"fields": ("allowed_origins", "publishable_key", "identity_secret")}),
    )

    def get_queryset(self, request: HttpRequest) -> Any:
        qs = super().get_queryset(request)
        return qs if request.user.is_superuser else qs.filter(pk__in=admin_tenant_ids(request))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if request.user.is_superuser:
            return self.readonly_fields
        return [*self.readonly_fields, "slug"]

    def _allowed(self, request: HttpRequest, obj: Any = None) -> bool:
        if request.user.is_superuser:
            return True
        ids = admin_tenant_ids(request)
        return request.user.is_staff and bool(ids) and (obj is None or obj.pk in ids)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email"]
    autocomplete_fields: ClassVar[list[str]] = []

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "user" and not request.user.is_superuser:
            # Only people already in one of the admin's tenants; new people are invited by a superuser.
            kwargs["queryset"] = User.objects.filter(
                memberships__tenant__in=admin_tenant_ids(request)
            ).distinct()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(ApiKey)
class ApiKeyAdmin(TenantScopedAdmin):
    list_display = ["prefix", "name", "tenant", "created_at", "last_used_at", "revoked_at"]
    fields = ["tenant", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            obj.save(update_fields=["name"])
            return
        new = api_key_create(tenant=obj.tenant, name=obj.name, created_by=request.user)  # type: ignore[arg-type]
        obj.pk, obj.prefix = new.key.pk, new.key.prefix
        self.message_user(
            request, f"Secret key (shown once, copy it now): {new.secret}", level=messages.WARNING
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [*self.readonly_fields, "tenant"] if obj else self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        for key in queryset:
            api_key_revoke(tenant=key.tenant, key=key, actor=request.user)  # type: ignore[arg-type]


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyTenantAdmin):
    list_display = ["created_at", "tenant", "actor", "action", "target_type", "target_id"]
    list_filter = ["action"]
    search_fields = ["action", "target_id", "actor__email"]
