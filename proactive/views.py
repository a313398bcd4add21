from __future__ import annotations

from datetime import timedelta

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.tenancy import tenant_view
from proactive.models import Customer, PipelineRun, Signal


@tenant_view()
def overview(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    since = timezone.now() - timedelta(days=1)
    context = {
        "customers": Customer.objects.for_tenant(tenant).count(),
        "signals_24h": Signal.objects.for_tenant(tenant).filter(received_at__gte=since).count(),
        "latest_run": PipelineRun.objects.for_tenant(tenant).order_by("-started_at").first(),
    }
    return render(request, "proactive/overview.html", context)
