"""The Insights page: behaviour that preceded the prediction target, and a playbook from one."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Membership
from accounts.tenancy import TenantRequest, tenant_view
from campaigns.conditions import ConditionError
from campaigns.insights import TEMPLATES, playbook_from_insight
from proactive.insights.service import insight_get, insight_run_latest, insights_of
from proactive.insights.words import target_verb
from proactive.models import Insight


def _backtest_rows(insight: Insight) -> list[dict[str, Any]]:
    rows = []
    for b in insight.backtest:
        rows.append(
            {
                "as_of": b["as_of"][:10],
                "matched": b["matched"],
                "rate": b["matched_reached"] / b["matched"] if b["matched"] else None,
                "base_rate": b["reached"] / b["customers"] if b["customers"] else None,
            }
        )
    return rows


@tenant_view()
def insight_list(request: TenantRequest) -> HttpResponse:
    tenant = request.tenant
    run = insight_run_latest(tenant=tenant)
    insights = insights_of(tenant=tenant, insight_run=run)
    return render(
        request,
        "campaigns/insights.html",
        {
            "run": run,
            "rows": [
                {
                    "insight": i,
                    "backtest": _backtest_rows(i),
                    # `name` in the sentence is a signal pattern: shown as code, everything escaped.
                    "segments": [(k % 2 == 1, part) for k, part in enumerate(i.text.split("`"))],
                    "template": TEMPLATES[i.kind]["name"] if i.kind in TEMPLATES else "Check-in",
                }
                for i in insights
            ],
            "verb": target_verb(run.target if run else tenant.prediction_target),
            "tried": (run.stats.get("tried") if run else None) or 0,
        },
    )


@tenant_view(write_role=Membership.Role.ADMIN)
@require_POST
def insight_playbook(request: TenantRequest, insight_id: Any) -> HttpResponse:
    tenant = request.tenant
    try:
        insight = insight_get(tenant=tenant, insight_id=insight_id)
    except Insight.DoesNotExist:
        raise Http404 from None
    try:
        playbook = playbook_from_insight(tenant=tenant, insight=insight, actor=request.user)
    except ConditionError as exc:
        messages.error(request, f"Could not create the playbook: {exc}")
        return redirect("insights:list", tenant.slug)
    messages.success(
        request,
        f"Created the disabled playbook “{playbook.name}”. Review its message, then enable it in the admin.",
    )
    return redirect("dashboard:playbook_detail", tenant.slug, playbook.pk)
