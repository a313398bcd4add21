"""Pages: tenant admins' webhooks (subscriptions, the one-time secret, the delivery log)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Membership
from accounts.tenancy import TenantRequest, tenant_view
from webhooks.events import EVENT_TYPES
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.selectors import delivery_log, endpoint_get, endpoint_list
from webhooks.services import WebhookError, endpoint_create, endpoint_delete, endpoint_set_enabled

SECRET_SESSION_KEY = "new_webhook_secret"  # noqa: S105 (a session key name)


class WebhookForm(forms.Form):
    url = forms.URLField(
        max_length=500,
        assume_scheme="https",
        widget=forms.URLInput(attrs={"placeholder": "https://hooks.example.com/proactive"}),
    )
    events = forms.MultipleChoiceField(
        choices=[(e, e) for e in EVENT_TYPES], widget=forms.CheckboxSelectMultiple
    )


def _endpoint_or_404(request: TenantRequest, endpoint_id: Any) -> WebhookEndpoint:
    endpoint = endpoint_get(tenant=request.tenant, endpoint_id=endpoint_id)
    if endpoint is None:
        raise Http404("No such webhook")
    return endpoint


@tenant_view(min_role=Membership.Role.ADMIN)
def webhook_list(request: TenantRequest) -> HttpResponse:
    tenant = request.tenant
    form = WebhookForm(request.POST or None, initial={"events": ["outreach.sent"]})
    if request.method == "POST" and form.is_valid():
        try:
            endpoint, secret = endpoint_create(
                tenant=tenant,
                url=form.cleaned_data["url"],
                events=form.cleaned_data["events"],
                actor=request.user,
            )
        except WebhookError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        else:
            request.session[SECRET_SESSION_KEY] = {"endpoint": str(endpoint.pk), "secret": secret}
            messages.success(request, "Webhook created: copy its signing secret now, it is not shown again.")
            return redirect("dashboard:webhook_detail", tenant_slug=tenant.slug, endpoint_id=endpoint.pk)
    return render(
        request,
        "webhooks/webhook_list.html",
        {"endpoints": endpoint_list(tenant=tenant), "form": form},
        status=400 if form.errors else 200,
    )


@tenant_view(min_role=Membership.Role.ADMIN)
def webhook_detail(request: TenantRequest, endpoint_id: Any) -> HttpResponse:
    endpoint = _endpoint_or_404(request, endpoint_id)
    new = request.session.get(SECRET_SESSION_KEY)
    new_secret = None
    if new and new.get("endpoint") == str(endpoint.pk):
        new_secret = request.session.pop(SECRET_SESSION_KEY)["secret"]
    status = request.GET.get("status", "")
    return render(
        request,
        "webhooks/webhook_detail.html",
        {
            "endpoint": endpoint,
            "deliveries": delivery_log(tenant=request.tenant, endpoint=endpoint, status=status),
            "status": status if status in WebhookDelivery.Status.values else "",
            "statuses": WebhookDelivery.Status.choices,
            "new_secret": new_secret,
        },
    )


@require_POST
@tenant_view(min_role=Membership.Role.ADMIN)
def webhook_toggle(request: TenantRequest, endpoint_id: Any) -> HttpResponse:
    endpoint = _endpoint_or_404(request, endpoint_id)
    enable = request.POST.get("enabled") == "1"
    if endpoint_set_enabled(tenant=request.tenant, endpoint=endpoint, enabled=enable, actor=request.user):
        messages.success(
            request, "Webhook enabled." if enable else "Webhook disabled: no new events are sent."
        )
    return redirect("dashboard:webhook_detail", tenant_slug=request.tenant.slug, endpoint_id=endpoint.pk)


@require_POST
@tenant_view(min_role=Membership.Role.ADMIN)
def webhook_delete(request: TenantRequest, endpoint_id: Any) -> HttpResponse:
    endpoint = _endpoint_or_404(request, endpoint_id)
    endpoint_delete(tenant=request.tenant, endpoint=endpoint, actor=request.user)
    messages.success(request, f"Deleted the webhook to {endpoint.url}.")
    return redirect("dashboard:webhooks", tenant_slug=request.tenant.slug)
