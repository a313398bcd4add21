"""Run the tenant's pipeline now, from the pages (admins): queued, its progress on the runs page."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from accounts.models import Membership
from accounts.tenancy import TenantRequest, tenant_view
from pipeline.services import run_now_request


@require_POST
@tenant_view(Membership.Role.ADMIN)
def run_now(request: TenantRequest) -> HttpResponse:
    tenant = request.tenant
    if run_now_request(tenant=tenant):
        messages.success(
            request, "Pipeline run queued: scoring, playbooks, campaigns and outcomes, in that order."
        )
    else:
        messages.info(request, "A run requested seconds ago is already queued or running.")
    return redirect("dashboard:runs", tenant_slug=tenant.slug)
