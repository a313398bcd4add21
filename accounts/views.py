from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from accounts.models import ApiKey, Membership
from accounts.services import api_key_create, api_key_revoke, tenant_rotate_keys
from accounts.tenancy import TenantRequest, tenant_view


@login_required
def home(request: TenantRequest) -> HttpResponse:
    """Send the user to their tenant; a user of several tenants picks one."""
    memberships = list(
        Membership.objects.filter(user=request.user).select_related("tenant").order_by("tenant__name")
    )
    if len(memberships) == 1:
        membership = memberships[0]
        # Agents work the review queue; the analytics are one click away in the navigation.
        landing = "dashboard:queue" if membership.role == Membership.Role.AGENT else "dashboard:overview"
        return redirect(landing, tenant_slug=membership.tenant.slug)
    return render(request, "accounts/choose_tenant.html", {"memberships": memberships})


@tenant_view(min_role=Membership.Role.ADMIN)
def keys(request: TenantRequest) -> HttpResponse:
    tenant = request.tenant
    response = render(
        request,
        "accounts/keys.html",
        {
            "keys": ApiKey.objects.for_tenant(tenant).order_by("-created_at"),
            "new_secret": request.session.pop("new_secret_key", None),
        },
    )
    # A one-time secret and the identity secret: never kept by a browser or proxy cache.
    add_never_cache_headers(response)
    response["Cache-Control"] = "no-store, no-cache, must-revalidate, max-age=0, private"
    return response


@require_POST
@tenant_view(min_role=Membership.Role.ADMIN)
def key_create(request: TenantRequest) -> HttpResponse:
    tenant = request.tenant
    name = (request.POST.get("name") or "Server key").strip()[:100]
    new = api_key_create(tenant=tenant, name=name, created_by=request.user)
    request.session["new_secret_key"] = new.secret
    messages.success(request, f"Created {new.key.prefix}…; copy the secret now, it is not shown again.")
    return redirect("accounts:keys", tenant_slug=tenant.slug)


@require_POST
@tenant_view(min_role=Membership.Role.ADMIN)
def key_revoke(request: TenantRequest, prefix: str) -> HttpResponse:
    tenant = request.tenant
    key = get_object_or_404(ApiKey.objects.for_tenant(tenant), prefix=prefix)
    if api_key_revoke(tenant=tenant, key=key, actor=request.user):
        messages.success(request, f"Revoked {key.prefix}…")
    return redirect("accounts:keys", tenant_slug=tenant.slug)


@require_POST
@tenant_view(min_role=Membership.Role.ADMIN)
def keys_rotate(request: TenantRequest) -> HttpResponse:
    tenant = request.tenant
    which = request.POST.get("which")
    tenant_rotate_keys(
        tenant=tenant,
        actor=request.user,
        publishable=which == "publishable",
        identity=which == "identity",
    )
    messages.success(request, "Rotated. Update your integration with the new value.")
    return redirect("accounts:keys", tenant_slug=tenant.slug)
