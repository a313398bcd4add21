"""Incident pages: what monitoring suspects, what is open, what was resolved, and whether the
notice kept notified customers from contacting support."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib import messages
from django.db import connection
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.models import Membership
from accounts.tenancy import TenantRequest, tenant_view
from campaigns import monitoring
from campaigns.conditions import ConditionError, parse_condition, render_text
from campaigns.incidents import incident_resolve
from campaigns.models import Incident, Outreach
from campaigns.playbooks import matching_sql
from dashboard.charts import chart, series
from proactive.models import PipelineRun
from proactive.signal_patterns import patterns_sql
from proactive.sql import merge_params

AFFECTED_SHOWN = 50
PAST_SHOWN = 50


def _incident(tenant: Any, incident_id: Any) -> Incident:
    incident = Incident.objects.for_tenant(tenant).filter(pk=incident_id).first()
    if incident is None:
        raise Http404("No such incident")
    return incident


def _text(condition: Any) -> str:
    try:
        return render_text(parse_condition(condition, "affected"))
    except ConditionError as exc:
        return f"invalid: {exc}"


@tenant_view()
def incident_list(request: TenantRequest) -> HttpResponse:
    tenant = request.tenant
    rows = list(Incident.objects.for_tenant(tenant).order_by("-opened_at")[: PAST_SHOWN * 2])
    last_run = (
        PipelineRun.objects.for_tenant(tenant)
        .filter(kind=PipelineRun.Kind.MONITOR)
        .order_by("-started_at")
        .first()
    )
    return render(
        request,
        "campaigns/incident_list.html",
        {
            "suspected": [i for i in rows if i.status == Incident.Status.SUSPECTED],
            "open": [i for i in rows if i.status == Incident.Status.OPEN],
            "past": [i for i in rows if i.status in (Incident.Status.RESOLVED, Incident.Status.DISMISSED)][
                :PAST_SHOWN
            ],
            "last_run": last_run,
            "settings": monitoring.monitoring_settings(tenant),
        },
    )


def spike_chart(incident: Incident) -> dict[str, Any]:
    hours = sorted((incident.monitor_state or {}).get("hours", {}).items())
    labels = [timezone.localtime(datetime.fromisoformat(h)).strftime("%d %b %H:%M") for h, _ in hours]
    return chart(
        "line",
        labels=labels,
        series=[
            series("customers hitting the signal", [v[0] for _, v in hours], "red"),
            series("expected from history", [v[1] for _, v in hours], "grey", dashed=True),
        ],
        x="hour",
        y="customers per hour",
        y_format="count",  # observed are whole customers, expected a mean: 45 and 0.9, never "45.000"
    )


def _segment_sql(segment: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """` AND c.attributes -> KEY = VALUE` per attribute of a detected segment; parameters
    `seg<J>_key` and `seg<J>_value`."""
    sql, params = "", {}
    for j, (key, value) in enumerate(segment.items()):
        sql += f" AND c.attributes -> %(seg{j}_key)s = %(seg{j}_value)s::jsonb"
        params[f"seg{j}_key"], params[f"seg{j}_value"] = key, monitoring.json.dumps(value)
    return sql, params


def _affected_detected_sql(tenant: Any, incident: Incident, as_of: datetime) -> tuple[str, dict[str, Any]]:
    """The customers of a detected incident from the hourly rollups: those in its segment with a
    hit on its signal in [started_at, as_of], the same set as its `affected` condition."""
    d = incident.detection or {}
    seg_sql, seg_params = _segment_sql(d.get("segment") or {})
    sql = (
        "SELECT DISTINCT h.customer_id FROM proactive_signalhourly h "  # noqa: S608
        "JOIN proactive_customer c ON c.id = h.customer_id AND c.tenant_id = %(tenant_id)s "
        "WHERE h.tenant_id = %(tenant_id)s AND h.name = %(signal)s "
        "AND h.hour >= date_trunc('hour', %(started)s::timestamptz, 'UTC') "
        f"AND h.last_at >= %(started)s AND h.first_at <= %(as_of)s{seg_sql}"
    )
    params = {
        "tenant_id": tenant.pk,
        "signal": d["signal"],
        "started": datetime.fromisoformat(d["started_at"]),
        "as_of": as_of,
    }
    return sql, merge_params(params, seg_params)


def _as_detected(incident: Incident) -> bool:
    """A detected incident whose `affected` is still the detector's: its customers come from the
    hourly rollups (the same set, faster); once an admin edits it, from the condition."""
    d = incident.detection
    if not d:
        return False
    started = datetime.fromisoformat(d["started_at"])
    return incident.affected == monitoring.affected_condition(d["signal"], started, d.get("segment"))


def _affected(tenant: Any, incident: Incident, as_of: datetime) -> tuple[int, list[dict[str, Any]]]:
    if _as_detected(incident):
        sql, params = _affected_detected_sql(tenant, incident, as_of)
    else:
        try:
            condition = parse_condition(incident.affected, "affected")
        except ConditionError:
            return 0, []
        sql, params = matching_sql(tenant=tenant, as_of=as_of, condition=condition)
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT count(*) OVER (), c.external_id, c.name, o.status FROM ({sql}) m "  # noqa: S608
            "JOIN proactive_customer c ON c.id = m.customer_id AND c.tenant_id = %(tenant_id)s "
            "LEFT JOIN campaigns_outreach o ON o.tenant_id = %(tenant_id)s "
            "AND o.incident_id = %(incident_id)s "
            "AND o.customer_id = c.id AND starts_with(o.dedupe_key, 'inc:') "
            "ORDER BY c.external_id LIMIT %(shown)s",
            merge_params(
                params, {"tenant_id": tenant.pk, "incident_id": incident.pk, "shown": AFFECTED_SHOWN}
            ),
        )
        rows = cur.fetchall()
    total = rows[0][0] if rows else 0
    return total, [{"external_id": r[1], "name": r[2], "notice": r[3]} for r in rows]


def contact_comparison(tenant: Any, incident: Incident) -> dict[str, Any] | None:
    """For a resolved detected incident: the share of notified customers who contacted support
    within the horizon after the notice, against customers who hit the same signal in the same
    segment during this and the tenant's other resolved incidents but got no notice."""
    if incident.status != Incident.Status.RESOLVED or not incident.detection:
        return None
    window = timedelta(days=tenant.horizon_days)
    contact, contact_params = patterns_sql(tenant.contact_signals, "s.name", "contact")
    incidents = list(
        Incident.objects.for_tenant(tenant)
        .filter(status=Incident.Status.RESOLVED, resolved_at__isnull=False)
        .exclude(monitored_signal="")
        .order_by("-opened_at")[:20]
    )
    totals = {"notified": [0, 0], "not_notified": [0, 0]}
    this: dict[str, list[int]] = {}
    with connection.cursor() as cur:
        for inc in incidents:
            d = inc.detection or {}
            seg_sql, seg_params = _segment_sql(d.get("segment") or {})
            cur.execute(
                f"""
                WITH notified AS (
                    SELECT customer_id FROM campaigns_outreach
                    WHERE tenant_id = %(tenant_id)s AND incident_id = %(incident_id)s
                    AND status = 'sent' AND starts_with(dedupe_key, 'inc:')
                ), hit AS (
                    SELECT DISTINCT h.customer_id FROM proactive_signalhourly h
                    JOIN proactive_customer c ON c.id = h.customer_id AND c.tenant_id = %(tenant_id)s
                    WHERE h.tenant_id = %(tenant_id)s AND h.name = %(signal)s
                    AND h.last_at >= %(started)s AND h.first_at <= %(resolved_at)s{seg_sql}
                ), groups AS (
                    SELECT customer_id, true AS notified FROM notified
                    UNION ALL SELECT customer_id, false FROM hit
                    WHERE customer_id NOT IN (SELECT customer_id FROM notified)
                )
                SELECT g.notified, count(*), count(*) FILTER (WHERE EXISTS (
                    SELECT 1 FROM proactive_signal s
                    WHERE s.tenant_id = %(tenant_id)s AND s.customer_id = g.customer_id
                    AND s.timestamp > %(opened_at)s AND s.timestamp <= %(window_end)s AND {contact}))
                FROM groups g GROUP BY g.notified
                """,  # noqa: S608
                merge_params(
                    {
                        "tenant_id": tenant.pk,
                        "incident_id": inc.pk,
                        "signal": inc.monitored_signal,
                        "started": datetime.fromisoformat(d["started_at"]),
                        "resolved_at": inc.resolved_at,
                        "opened_at": inc.opened_at,
                        "window_end": inc.opened_at + window,
                    },
                    seg_params,
                    contact_params,
                ),
            )
            for notified, customers, contacted in cur.fetchall():
                name = "notified" if notified else "not_notified"
                totals[name][0] += customers
                totals[name][1] += contacted
                if inc.pk == incident.pk:
                    this[name] = [customers, contacted]

    def rate(pair: list[int]) -> float | None:
        return pair[1] / pair[0] if pair[0] else None

    notified, others = totals["notified"], totals["not_notified"]
    enough = notified[0] >= 20 and others[0] >= 20
    verdict = None
    notified_rate, others_rate = rate(notified), rate(others)
    if enough and notified_rate is not None and others_rate is not None:
        verdict = "less" if notified_rate < others_rate else "not less"
    return {
        "window_days": window.days,
        "incidents": len(incidents),
        "notified": {"customers": notified[0], "contacted": notified[1], "rate": rate(notified)},
        "not_notified": {"customers": others[0], "contacted": others[1], "rate": rate(others)},
        "this": {k: {"customers": v[0], "contacted": v[1], "rate": rate(v)} for k, v in this.items()},
        "enough": enough,
        "verdict": verdict,
    }


@tenant_view()
def incident_detail(request: TenantRequest, incident_id: Any) -> HttpResponse:
    tenant = request.tenant
    incident = _incident(tenant, incident_id)
    now = timezone.now()
    as_of = incident.resolved_at or now
    total, affected = _affected(tenant, incident, as_of)
    counts: dict[str, int] = {}
    for status in (
        Outreach.objects.for_tenant(tenant).filter(incident=incident).values_list("status", flat=True)
    ):
        counts[status] = counts.get(status, 0) + 1
    state = incident.monitor_state or {}
    return render(
        request,
        "campaigns/incident_detail.html",
        {
            "incident": incident,
            "detection": incident.detection,
            "detected_at": datetime.fromisoformat(incident.detection["detected_at"])
            if incident.detection
            else None,
            "started_at": datetime.fromisoformat(incident.detection["started_at"])
            if incident.detection
            else None,
            "p_text": f"{incident.detection['p_value']:.1e}" if incident.detection else "",
            "affected_text": _text(incident.affected),
            "affected_total": total,
            "affected": affected,
            "counts": counts,
            "spike_chart": spike_chart(incident),
            "suggest_resolve": monitoring.resolve_suggested(incident),
            "last_elevated_at": datetime.fromisoformat(state["last_elevated_at"])
            if state.get("last_elevated_at")
            else None,
            "comparison": contact_comparison(tenant, incident),
            "checked_at": state.get("checked_at") or (incident.detection or {}).get("detected_at"),
            "can_act": request.membership.is_admin,
        },
    )


@require_POST
@tenant_view(write_role=Membership.Role.ADMIN)
def incident_action(request: TenantRequest, incident_id: Any, action: str) -> HttpResponse:
    tenant = request.tenant
    incident = _incident(tenant, incident_id)
    user = request.user
    if action == "confirm":
        changed, result = monitoring.incident_confirm(tenant=tenant, incident=incident, actor=user)
        text = f"Incident opened: {result.get('sent', 0)} customers notified." if changed else ""
    elif action == "dismiss":
        changed = monitoring.incident_dismiss(tenant=tenant, incident=incident, actor=user)
        text = "Incident dismissed." if changed else ""
    elif action == "resolve":
        changed, result = incident_resolve(tenant=tenant, incident=incident, actor=user)
        text = f"Incident resolved: {result.get('sent', 0)} follow-ups sent." if changed else ""
    else:
        raise Http404("No such action")
    if changed:
        messages.success(request, text)
    else:
        messages.error(request, f"Nothing done: the incident is {incident.get_status_display().lower()}.")
    return redirect("dashboard:incident_detail", tenant.slug, incident.pk)
