from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from accounts.models import Membership


def tenant_navigation(request: HttpRequest) -> dict[str, Any]:
    """The current tenant and the user's other tenants, for the navigation bar."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "current_tenant": getattr(request, "tenant", None),
        "current_membership": getattr(request, "membership", None),
        "user_memberships": Membership.objects.filter(user=user)
        .select_related("tenant")
        .order_by("tenant__name"),
    }
