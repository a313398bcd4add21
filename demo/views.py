"""The demo customer app: a pretend tenant product page embedding the in-app widget."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.models import Tenant
from campaigns.models import Outreach
from proactive.models import Customer

DEMO_SLUG = "demo"


def demo_token(*, tenant: Tenant, external_id: str, lifetime: timedelta = timedelta(hours=1)) -> str:
    """What a tenant's backend does: sign who the customer is with the identity secret."""
    now = int(time.time())
    claims = {"sub": external_id, "iat": now, "exp": now + int(lifetime.total_seconds())}
    return jwt.encode(claims, tenant.identity_secret, algorithm="HS256")


def demo_app(request: HttpRequest) -> HttpResponse:
    """A pretend tenant product page that embeds the widget for one of the demo tenant's customers.

    It mints customer tokens for whoever asks, so it exists only in the demo (settings.DEMO: DEBUG,
    or DEMO=1, which `make demo` sets) and only for the demo tenant, whose slug no real tenant can
    take (accounts.services.RESERVED_SLUGS); elsewhere it is a 404.
    """
    if not settings.DEMO:
        raise Http404("The demo is off")
    tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
    if tenant is None:
        raise Http404("No demo tenant")
    customers = Customer.objects.for_tenant(tenant)
    # Customers with a message waiting come first, so the widget has something to show.
    with_messages = customers.filter(
        pk__in=Outreach.objects.for_tenant(tenant)
        .filter(status=Outreach.Status.SENT, channel=Outreach.Channel.IN_APP, dismissed_at=None)
        .values("customer_id")
    ).order_by("created_at")
    wanted = request.GET.get("customer")
    customer = (
        customers.filter(external_id=wanted).first()
        if wanted
        else (with_messages.first() or customers.order_by("created_at").first())
    )
    if customer is None:
        raise Http404("No such demo customer")
    context = {
        "tenant": tenant,
        "customer": customer,
        "token": demo_token(tenant=tenant, external_id=customer.external_id),
        "api_base": request.build_absolute_uri("/api/v1"),
        "others": with_messages.exclude(pk=customer.pk).values_list("external_id", "name")[:8],
    }
    response = render(request, "demo/app.html", context)
    response["Cache-Control"] = "no-store"
    return response
