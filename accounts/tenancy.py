"""Resolve the tenant for a page request from the URL, with the membership check in the same place."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, cast

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse

from accounts.models import Membership, Tenant, User


class TenantRequest(HttpRequest):
    """A page request after `@tenant_view`: the tenant from the URL and the user's membership in it."""

    tenant: Tenant
    membership: Membership
    user: User  # @tenant_view requires a login


ROLE_RANK = {Membership.Role.VIEWER: 0, Membership.Role.AGENT: 1, Membership.Role.ADMIN: 2}


def get_membership(user: Any, slug: str) -> Membership:
    """The user's membership in the tenant `slug`; outsiders get a 404, not a hint that it exists."""
    if not user.is_authenticated:
        raise Http404
    membership = Membership.objects.select_related("tenant").filter(user=user, tenant__slug=slug).first()
    if membership is None:
        if user.is_superuser:
            tenant = Tenant.objects.filter(slug=slug).first()
            if tenant is not None:
                return Membership(user=user, tenant=tenant, role=Membership.Role.ADMIN)
        raise Http404("No such tenant")
    return membership


def tenant_view(
    min_role: str = Membership.Role.VIEWER, *, write_role: str | None = None
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Decorate a page view taking `tenant_slug`: sets `request.tenant` and `request.membership`.

    `min_role` gates every method; `write_role` (default: `min_role`) gates unsafe methods,
    so a viewer can look at a page whose actions need an agent.
    """

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, tenant_slug: str, *args: Any, **kwargs: Any) -> HttpResponse:
            membership = get_membership(request.user, tenant_slug)
            needed = min_role
            if request.method not in ("GET", "HEAD", "OPTIONS"):
                needed = write_role or min_role
            if ROLE_RANK[Membership.Role(membership.role)] < ROLE_RANK[Membership.Role(needed)]:
                raise PermissionDenied(f"This needs the {needed} role")
            tenant_request = cast(TenantRequest, request)
            tenant_request.tenant = membership.tenant
            tenant_request.membership = membership
            return view(tenant_request, *args, **kwargs)

        return wrapper

    return decorator
