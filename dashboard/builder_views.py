"""Playbook, campaign and incident builders: server-rendered forms, HTMX for the tree and the
live panel.

Saving goes through the API's input serializers and the campaigns services, so a page save and
an API call accept and refuse exactly the same playbooks, campaigns and incidents.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST
from django_htmx.http import trigger_client_event

from accounts.models import Membership
from accounts.rate_limits import PREVIEW_BUDGET, tenant_key
from accounts.tenancy import TenantRequest, tenant_view
from campaigns import campaign_sends, incidents, playbooks, rules, selectors
from campaigns.api import (
    CampaignInputSerializer,
    IncidentInputSerializer,
    PlaybookInputSerializer,
    name_taken,
)
from campaigns.conditions import ConditionError, parse_condition, render_text
from campaigns.models import Incident, Outreach, Playbook
from campaigns.rendering import FIELDS, render_message, typed_html, unknown_variables
from dashboard import builder
from dashboard.effect_selectors import playbook_get
from proactive.models import Customer

ADMIN = Membership.Role.ADMIN
KINDS = ("playbook", "campaign", "incident")
CONDITION_PATH = {"playbook": "trigger", "campaign": "audience", "incident": "affected"}
DEFAULT_ACTION = {
    "channel": "in_app",
    "title": "",
    "body": "",
    "cta_label": "",
    "cta_url": "",
    "requires_review": False,
    "priority": "normal",
}


def _action_from_form(post: Any, prefix: str = "") -> dict[str, Any]:
    return {
        "channel": post.get(f"{prefix}channel", "in_app"),
        "title": post.get(f"{prefix}title", ""),
        "body": post.get(f"{prefix}body", "").replace("\r\n", "\n"),
        "cta_label": post.get(f"{prefix}cta_label", "").strip(),
        "cta_url": post.get(f"{prefix}cta_url", "").strip(),
        "requires_review": post.get("requires_review") == "on",
        "priority": post.get("priority", "normal"),
    }


def _error_words(field: str, message: str) -> str:
    """The validator's message without the field's own path, conditions named by position:
    "affected.all[1].any[0].value: ..." -> "condition 2 › 1, value: ..."."""
    message = re.sub(rf"^{re.escape(field)}(\.|(?=\[)|: )", "", message)
    head, sep, rest = message.partition(": ")
    if not sep or not re.fullmatch(r"[\w\[\].]+", head):
        return message
    steps = [str(int(n) + 1) for n in re.findall(r"(?:all|any)\[(\d+)\]", head)]
    tail = re.sub(r"(?:(?:all|any)\[\d+\]|not)\.?", "", head).strip(".")
    where = f"condition {' › '.join(steps)}" if steps else ""
    where = ", ".join(p for p in (where, tail.replace("_", " ")) if p)
    return f"{where}: {rest}" if where else rest


def _errors(serializer: Any, labels: dict[str, str] | None = None) -> dict[str, str]:
    return {
        (labels or {}).get(k, k): " ".join(_error_words(k, str(e)) for e in v)
        for k, v in serializer.errors.items()
    }


def _kind(post: Any) -> str:
    kind = post.get("kind")
    return kind if kind in KINDS else "playbook"


def _condition(request: TenantRequest) -> dict[str, Any] | None:
    return builder.condition_from_form(request.POST, tz=request.tenant.tz)


def _int(post: Any, name: str, default: int) -> int | str:
    raw = (post.get(name) or "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        return raw  # the serializer names the field and the problem


def _form_context(
    request: TenantRequest, *, kind: str, condition: Any, action: dict[str, Any]
) -> dict[str, Any]:
    tenant = request.tenant
    attributes = builder.attribute_keys(tenant)
    return {
        "kind": kind,
        "tree": builder.tree_view(condition, tz=tenant.tz),
        "catalogue": builder.signal_catalogue(tenant),
        "attribute_keys": attributes,
        "measures": builder.MEASURES,
        "ops": builder.OPS_WORDS,
        "add_ops": builder.ADD_OPS,
        "priorities": list(rules.PRIORITIES),
        "channels": Outreach.Channel.choices,
        "action": action,
        "variables": [f"customer.{f}" for f in FIELDS] + [f"customer.attributes.{k}" for k in attributes],
        **_panel(request, kind=kind, condition=condition, action=action),
    }


def _panel(request: TenantRequest, *, kind: str, condition: Any, action: dict[str, Any]) -> dict[str, Any]:
    """The live side panel: the condition in words, whom it matches now, the message preview."""
    tenant = request.tenant
    now = timezone.now()
    panel: dict[str, Any] = {
        "condition_error": None,
        "matching": None,
        "sample": [],
        "words": "",
        "throttled": 0,
    }
    try:
        parsed = parse_condition(condition, CONDITION_PATH[kind])
    except ConditionError as exc:
        panel["condition_error"] = str(exc)
    else:
        panel["words"] = render_text(parsed)
        # The tenant's preview budget (shared with the API's preview): when spent, the panel
        # says so and when to expect the count again; the rest of the panel still renders.
        panel["throttled"] = PREVIEW_BUDGET.wait(tenant_key(tenant.pk))
    if panel["condition_error"] is None and not panel["throttled"]:
        preview = playbooks.playbook_preview(tenant=tenant, trigger=condition, as_of=now, sample_size=8)
        panel["matching"] = preview["matching"]
        panel["sample"] = list(
            Customer.objects.for_tenant(tenant)
            .filter(external_id__in=preview["sample"])
            .order_by("external_id")
            .values("external_id", "name", "email", "attributes")
        )
        panel["unknown"] = builder.unknown_names(tenant, condition, builder.attribute_keys(tenant))
        panel["distributions"] = builder.distributions(tenant, condition, now)
    panel["customer_count"] = Customer.objects.for_tenant(tenant).count()
    wanted = request.POST.get("sample_customer") or request.GET.get("sample_customer")
    sample_ids = [c["external_id"] for c in panel["sample"]]
    chosen = wanted if wanted in sample_ids else (sample_ids[0] if sample_ids else None)
    customer = next((c for c in panel["sample"] if c["external_id"] == chosen), None)
    if customer is None:
        customer = {
            "name": "Sample Customer",
            "email": "sample@example.com",
            "external_id": "sample",
            "attributes": {},
        }
    panel["preview_customer"] = customer
    panel["preview_for"] = chosen
    panel["preview"] = render_message(title=action["title"], body=action["body"], customer=customer)
    panel["unknown_vars"] = unknown_variables(action["body"]) + unknown_variables(action["title"])
    panel["typed_html"] = typed_html(action["body"]) + typed_html(action["title"])
    return panel


def _playbook_initial(playbook: Playbook | None) -> dict[str, Any]:
    if playbook is None:
        return {
            "name": "",
            "enabled": False,
            "cooldown_days": 14,
            "holdout_percent": 10,
            "review_expiry_hours": 72,
        }
    return {
        "name": playbook.name,
        "enabled": playbook.enabled,
        "cooldown_days": playbook.cooldown_days,
        "holdout_percent": playbook.holdout_percent,
        "review_expiry_hours": playbook.review_expiry_hours,
    }


def _playbook_form(request: TenantRequest, playbook: Playbook | None) -> HttpResponse:
    tenant = request.tenant
    errors: dict[str, Any] = {}
    if request.method == "POST":
        condition = _condition(request)
        action = _action_from_form(request.POST)
        settings = {
            "name": request.POST.get("name", "").strip(),
            "enabled": request.POST.get("enabled") == "on",
            "cooldown_days": _int(request.POST, "cooldown_days", 14),
            "holdout_percent": _int(request.POST, "holdout_percent", 10),
            "review_expiry_hours": _int(request.POST, "review_expiry_hours", 72),
        }
        serializer = PlaybookInputSerializer(
            data={**settings, "trigger": condition, "action": action},
            context={"tenant": tenant, "instance": playbook},
        )
        if serializer.is_valid() and name_taken(tenant, serializer.validated_data["name"], playbook):
            errors = {"name": "a playbook with this name exists; choose another name."}
        elif serializer.is_valid():
            if playbook is None:
                playbook = playbooks.playbook_create(
                    tenant=tenant, data=serializer.validated_data, actor=request.user
                )
                messages.success(request, f"Playbook “{playbook.name}” created.")
            else:
                playbooks.playbook_update(
                    tenant=tenant, playbook=playbook, data=serializer.validated_data, actor=request.user
                )
                messages.success(request, "Saved.")
            return redirect("dashboard:playbook_detail", tenant_slug=tenant.slug, playbook_id=playbook.pk)
        else:
            errors = _errors(serializer)
    else:
        condition = playbook.trigger if playbook else {"all": [builder.default_leaf(tenant)]}
        action = {**DEFAULT_ACTION, **(playbook.action if playbook else {})}
        settings = _playbook_initial(playbook)
    context = _form_context(request, kind="playbook", condition=condition, action=action)
    context.update(playbook=playbook, settings=settings, errors=errors)
    return render(request, "dashboard/playbook_form.html", context, status=400 if errors else 200)


@tenant_view(ADMIN)
def playbook_new(request: TenantRequest) -> HttpResponse:
    return _playbook_form(request, None)


@tenant_view(ADMIN)
def playbook_edit(request: TenantRequest, playbook_id: Any) -> HttpResponse:
    tenant = request.tenant
    return _playbook_form(request, playbook_get(tenant=tenant, playbook_id=playbook_id))


@require_POST
@tenant_view(ADMIN)
def builder_tree(request: TenantRequest) -> HttpResponse:
    """HTMX: add or remove a node; returns the redrawn tree."""
    tenant = request.tenant
    tree = builder.apply_op(_condition(request), request.POST.get("op", ""), tenant)
    context = {
        "tree": builder.tree_view(tree, tz=tenant.tz),
        "catalogue": builder.signal_catalogue(tenant),
        "attribute_keys": builder.attribute_keys(tenant),
        "measures": builder.MEASURES,
        "ops": builder.OPS_WORDS,
        "add_ops": builder.ADD_OPS,
    }
    # The panel (count, sample, words) listens for this and refreshes from the new tree.
    return trigger_client_event(render(request, "dashboard/_condition_tree.html", context), "builder-changed")


@require_POST
@tenant_view(ADMIN)
def builder_panel(request: TenantRequest) -> HttpResponse:
    """HTMX: the live panel for the form as it stands (nothing is saved)."""
    kind = _kind(request.POST)
    context = _panel(
        request, kind=kind, condition=_condition(request), action=_action_from_form(request.POST)
    )
    context["kind"] = kind
    return render(request, "dashboard/_builder_panel.html", context)


def _local_datetime(value: str, tenant: Any) -> str:
    """A datetime-local field (the tenant's wall clock) as an ISO string with its offset."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value  # the serializer says what is wrong with it
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, tenant.tz)
    return parsed.isoformat()


@tenant_view(ADMIN)
def campaign_new(request: TenantRequest) -> HttpResponse:
    tenant = request.tenant
    errors: dict[str, Any] = {}
    default_send = timezone.localtime(timezone.now() + timedelta(hours=1), tenant.tz).strftime(
        "%Y-%m-%dT%H:%M"
    )
    if request.method == "POST":
        condition = _condition(request)
        action = _action_from_form(request.POST)
        send_at = _local_datetime(request.POST.get("send_at", ""), tenant)
        if request.POST.get("when") == "now":
            send_at = timezone.now().isoformat()
        settings = {
            "name": request.POST.get("name", "").strip(),
            "holdout_percent": _int(request.POST, "holdout_percent", 10),
            "send_at": send_at,
        }
        serializer = CampaignInputSerializer(
            data={**settings, "audience": condition, "action": action}, context={"tenant": tenant}
        )
        if serializer.is_valid():
            campaign = campaign_sends.campaign_create(
                tenant=tenant, data=serializer.validated_data, actor=request.user
            )
            messages.success(
                request,
                f"Campaign “{campaign.name}” scheduled: it goes out with the first pipeline run after "
                f"{timezone.localtime(campaign.send_at, tenant.tz):%Y-%m-%d %H:%M}.",
            )
            return redirect("dashboard:campaign_detail", tenant_slug=tenant.slug, campaign_id=campaign.pk)
        errors = _errors(serializer)
        settings["send_at"] = request.POST.get("send_at", default_send)
        settings["when"] = request.POST.get("when", "later")
    else:
        condition = {"all": [builder.default_leaf(tenant)]}
        action = dict(DEFAULT_ACTION)
        settings = {"name": "", "holdout_percent": 10, "send_at": default_send, "when": "later"}
    context = _form_context(request, kind="campaign", condition=condition, action=action)
    context.update(settings=settings, errors=errors, campaign=None)
    return render(request, "dashboard/campaign_form.html", context, status=400 if errors else 200)


# ---- incidents ---------------------------------------------------------------------------------

INCIDENT_NOTICE = {**DEFAULT_ACTION, "priority": "high"}
# The serializer's field names as the form labels them ("title" is the incident's, not the notice's).
INCIDENT_LABELS = {
    "component": "Component",
    "title": "Title",
    "affected": "Affected customers",
    "notice": "Notice",
    "follow_up": "Follow-up",
}


def _incident_initial(incident: Incident | None) -> dict[str, Any]:
    if incident is None:
        return {"component": "", "title": "", "overrides_budget": True, "follow_up_on": False}
    return {
        "component": incident.component,
        "title": incident.title,
        "overrides_budget": incident.overrides_budget,
        "follow_up_on": bool(incident.follow_up),
    }


def _incident_form(request: TenantRequest, incident: Incident | None) -> HttpResponse:
    tenant = request.tenant
    errors: dict[str, Any] = {}
    if incident is not None and incident.status not in incidents.EDITABLE:
        messages.error(
            request, f"A {incident.get_status_display().lower()} incident can no longer be changed."
        )
        return redirect("dashboard:incident_detail", tenant.slug, incident.pk)
    if request.method == "POST":
        condition = _condition(request)
        action = _action_from_form(request.POST)
        follow_up = _action_from_form(request.POST, prefix="fu_")
        settings = {
            "component": request.POST.get("component", "").strip(),
            "title": request.POST.get("incident_title", "").strip(),
            "overrides_budget": request.POST.get("overrides_budget") == "on",
            "follow_up_on": request.POST.get("follow_up_on") == "on",
        }
        serializer = IncidentInputSerializer(
            data={
                "component": settings["component"],
                "title": settings["title"],
                "overrides_budget": settings["overrides_budget"],
                "affected": condition,
                "notice": action,
                "follow_up": follow_up if settings["follow_up_on"] else None,
            }
        )
        if serializer.is_valid():
            if incident is None:
                incident, result = incidents.incident_open(
                    tenant=tenant, data=serializer.validated_data, actor=request.user
                )
                messages.success(
                    request,
                    f"Incident opened: {result.get('sent', 0)} affected customer"
                    f"{'' if result.get('sent', 0) == 1 else 's'} notified.",
                )
            else:
                changed, result = incidents.incident_update(
                    tenant=tenant, incident=incident, data=serializer.validated_data, actor=request.user
                )
                if not changed:
                    messages.error(request, "Not saved: the incident was resolved or dismissed meanwhile.")
                elif incident.status == Incident.Status.OPEN:
                    messages.success(
                        request,
                        f"Saved: {result.get('sent', 0)} newly affected customer"
                        f"{'' if result.get('sent', 0) == 1 else 's'} notified.",
                    )
                else:
                    messages.success(request, "Saved. Nobody is notified until the incident is confirmed.")
            return redirect("dashboard:incident_detail", tenant.slug, incident.pk)
        errors = _errors(serializer, INCIDENT_LABELS)
    else:
        condition = incident.affected if incident else {"all": [builder.default_incident_leaf(tenant)]}
        action = {**INCIDENT_NOTICE, **(incident.notice if incident else {})}
        follow_up = {**DEFAULT_ACTION, **((incident.follow_up or {}) if incident else {})}
        settings = _incident_initial(incident)
    context = _form_context(request, kind="incident", condition=condition, action=action)
    notified = 0
    if incident is not None and incident.status == Incident.Status.OPEN:
        notified = (
            Outreach.objects.for_tenant(tenant)
            .filter(incident=incident, dedupe_key__startswith="inc:", status=Outreach.Status.SENT)
            .count()
        )
    context.update(
        incident=incident, settings=settings, errors=errors, follow_up=follow_up, notified=notified
    )
    return render(request, "dashboard/incident_form.html", context, status=400 if errors else 200)


@tenant_view(ADMIN)
def incident_new(request: TenantRequest) -> HttpResponse:
    return _incident_form(request, None)


@tenant_view(ADMIN)
def incident_edit(request: TenantRequest, incident_id: Any) -> HttpResponse:
    incident = selectors.incident_get(tenant=request.tenant, incident_id=incident_id)
    if incident is None:
        raise Http404("No such incident")
    return _incident_form(request, incident)
