"""The ModelAdmin base that scopes the Django admin to the tenants a user administers."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db import models
from django.http import HttpRequest

from accounts.models import AuditLog, Membership, Tenant
from accounts.scoping import TenantOwned


def admin_tenant_ids(request: HttpRequest) -> list[int]:
    if not request.user.is_authenticated:
        return []
    cached = getattr(request, "_admin_tenant_ids", None)
    if cached is None:
        cached = list(
            Membership.objects.filter(user=request.user, role=Membership.Role.ADMIN).values_list(
                "tenant_id", flat=True
            )
        )
        request._admin_tenant_ids = cached  # type: ignore[attr-defined]
    return cached


class SameTenantReferencesForm(forms.ModelForm):
    """Every row a tenant-owned row points at belongs to the same tenant, whatever the choices
    offered to a user who administers several tenants."""

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        tenant = data.get("tenant") if "tenant" in self.fields else None
        tenant_id = tenant.pk if isinstance(tenant, Tenant) else getattr(self.instance, "tenant_id", None)
        if tenant_id is None:
            return data
        for name, value in list(data.items()):
            if name == "tenant":
                continue
            related = value if isinstance(value, models.QuerySet | list | tuple) else [value]
            for item in related:
                if isinstance(item, TenantOwned) and item.tenant_id != tenant_id:
                    self.add_error(name, "This belongs to another tenant.")
                    break
        return data


class TenantScopedAdmin(admin.ModelAdmin):
    """Querysets, foreign-key choices and permissions limited to the user's admin tenants.

    Tenant admins need no Django model permissions: their `admin` membership is the
    permission. Superusers see every tenant.
    """

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        qs = super().get_queryset(request)
        if request.user.is_superuser:
            return qs.unscoped() if hasattr(qs, "unscoped") else qs
        return qs.filter(tenant__in=admin_tenant_ids(request))

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        related = db_field.remote_field.model
        if not request.user.is_superuser:
            if related is Tenant:
                kwargs["queryset"] = Tenant.objects.filter(pk__in=admin_tenant_ids(request))
            elif issubclass(related, TenantOwned):
                kwargs["queryset"] = related.objects.filter(tenant__in=admin_tenant_ids(request))
        elif issubclass(related, TenantOwned):
            kwargs["queryset"] = related.objects.unscoped()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        """A row never changes tenant: moving it would leave references across tenants (an
        outreach of A pointing at a playbook now in B). Superusers included."""
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and isinstance(obj, TenantOwned) and "tenant" not in fields:
            fields.append("tenant")
        return fields

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change, **kwargs)
        tenant_field = form.base_fields.get("tenant")
        if tenant_field is not None and not request.user.is_superuser:
            ids = admin_tenant_ids(request)
            if len(ids) == 1 and obj is None:
                tenant_field.initial = ids[0]
        return type(form.__name__, (SameTenantReferencesForm, form), {})

    def _is_tenant_admin(self, request: HttpRequest, obj: Any = None) -> bool:
        if not request.user.is_active or not request.user.is_staff:
            return False
        if request.user.is_superuser:
            return True
        ids = admin_tenant_ids(request)
        return bool(ids) and (obj is None or obj.tenant_id in ids)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._is_tenant_admin(request)

    # Admin changes to tenant-owned rows also go to the tenant's AuditLog, which (unlike
    # Django's LogEntry) the tenant's admins can read and nobody can edit from the app.
    def _audit(self, request: HttpRequest, obj: Any, verb: str, data: dict | None = None) -> None:
        tenant_id = getattr(obj, "tenant_id", None) if isinstance(obj, TenantOwned) else None
        if tenant_id is None and isinstance(obj, Tenant):
            tenant_id = obj.pk
        if tenant_id is None:
            return
        AuditLog.objects.create(
            tenant_id=tenant_id,
            actor=request.user if request.user.is_authenticated else None,
            action=f"admin.{obj._meta.model_name}.{verb}",
            target_type=type(obj).__name__,
            target_id=str(obj.pk),
            data=data or {},
        )

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        self._audit(request, obj, "add")
        return super().log_addition(request, obj, message)

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        entries = message if isinstance(message, list) else []
        changed = [f for e in entries if isinstance(e, dict) for f in e.get("changed", {}).get("fields", [])]
        self._audit(request, obj, "change", {"fields": changed})
        return super().log_change(request, obj, message)

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        for obj in queryset:
            self._audit(request, obj, "delete", {"repr": str(obj)[:200]})
        return super().log_deletions(request, queryset)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._is_tenant_admin(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._is_tenant_admin(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._is_tenant_admin(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._is_tenant_admin(request, obj)


class ReadOnlyTenantAdmin(TenantScopedAdmin):
    """For records nobody edits from the app (audit log, engagement events, runs)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
