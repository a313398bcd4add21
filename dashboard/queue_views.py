"""Pages: the agents' review queue and the outreach item view."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib import messages
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.views.decorators.http import require_POST
from django.views.decorators.vary import vary_on_headers

from accounts.models import Membership, Tenant
from accounts.tenancy import TenantRequest, tenant_view
from campaigns import queue
from campaigns.conditions import ConditionError, iter_leaves, parse_condition, render_text
from campaigns.models import Outreach, OutreachEvent, Playbook, Priority
from campaigns.rendering import render_message, typed_html, unknown_variables
from proactive.models import RiskScore, Signal

PAGE_SIZE = 50
QUEUE_COLUMNS = (
    "id",
    "title",
    "priority",
    "risk_score",
    "triggered_at",
    "review_deadline",
    "snoozed_until",
    "status",
    "channel",
    "claimed_at",
    "claimed_by_id",
    "customer__external_id",
    "customer__name",
    "playbook__name",
    "claimed_by__email",
)
AGENT = Membership.Role.AGENT


def _tenant(request: TenantRequest) -> Tenant:
    return request.tenant


def _can_act(request: TenantRequest) -> bool:
    return request.membership.can_act


@vary_on_headers("HX-Request")
@tenant_view(write_role=AGENT)
def queue_page(request: TenantRequest) -> HttpResponse:
    """The queue, filtered and paginated; HTMX polls re-render only the list partial."""
    tenant = _tenant(request)
    filters = queue.QueueFilters.from_query(request.GET)
    # Page through ids only (an index-only walk of outreach_review_order, cheap even deep in
    # 10,000 items), then load the 50 rows of the page with their joins.
    ordered_ids = queue.queue_list(tenant=tenant, filters=filters).values_list("pk", flat=True)
    # The page holds ids, then (below) the rows of those ids in the same order.
    page: Page[Any] = Paginator(ordered_ids, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = (
        Outreach.objects.for_tenant(tenant)
        .filter(pk__in=list(page.object_list))
        .select_related("customer", "playbook", "claimed_by")
        .only(*QUEUE_COLUMNS)
    )
    by_id = {o.pk: o for o in rows}
    page.object_list = [by_id[pk] for pk in page.object_list if pk in by_id]
    now = timezone.now()
    context = {
        "page": page,
        "filters": filters,
        "now": now,
        "claim_cutoff": queue.claim_cutoff(now),
        "playbooks": Playbook.objects.for_tenant(tenant).values_list("id", "name"),
        "priorities": Priority.choices,
        "statuses": [(s.value, s.label) for s in queue.QUEUE_STATUSES],
        "can_act": _can_act(request),
        "query_without_page": _query_without(request, "page"),
    }
    template = "campaigns/queue.html"
    if getattr(request, "htmx", False):
        template += "#queue-list"
    return render(request, template, context)


def _query_without(request: TenantRequest, key: str) -> str:
    query = request.GET.copy()
    query.pop(key, None)
    return query.urlencode()


@require_POST
@tenant_view(AGENT)
def claim_next(request: TenantRequest) -> HttpResponse:
    tenant = _tenant(request)
    filters = queue.QueueFilters.from_query(request.POST)
    outreach = queue.outreach_claim_next(tenant=tenant, user=request.user, filters=filters)
    if outreach is None:
        messages.info(request, "Nothing left to claim: the queue is clear.")
        return redirect("dashboard:queue", tenant_slug=tenant.slug)
    return redirect("dashboard:item", tenant_slug=tenant.slug, outreach_id=outreach.pk)


@require_POST
@tenant_view(AGENT)
def bulk(request: TenantRequest) -> HttpResponse:
    tenant = _tenant(request)
    ids = request.POST.getlist("ids")
    action = request.POST.get("action", "")
    if not ids:
        messages.warning(request, "Select items first.")
    else:
        try:
            result = queue.outreach_bulk(
                tenant=tenant,
                user=request.user,
                outreach_ids=_valid_uuids(ids),
                action=action,
                reason=request.POST.get("reason", ""),
            )
        except queue.QueueError as exc:
            messages.error(request, str(exc))
        else:
            verb = "Sent" if action == "send" else "Rejected"
            note = f"; skipped {result.skipped} held by others or no longer pending" if result.skipped else ""
            messages.success(request, f"{verb} {len(result.done)} item(s){note}.")
    back = reverse("dashboard:queue", kwargs={"tenant_slug": tenant.slug})
    query = request.POST.get("return_query", "")
    return redirect(f"{back}?{query}" if query else back)


def _valid_uuids(values: list[str]) -> list[str]:
    import uuid

    valid = []
    for value in values:
        try:
            valid.append(str(uuid.UUID(value)))
        except ValueError:
            continue
    return valid


def _get_outreach(request: TenantRequest, outreach_id: Any) -> Outreach:
    outreach = queue.outreach_get(tenant=_tenant(request), outreach_id=outreach_id)
    if outreach is None:
        raise Http404("No such outreach")
    return outreach


def _why(outreach: Outreach) -> dict[str, Any]:
    """Why it fired: the condition as text, each leaf with the customer's value at the time."""
    source = outreach.playbook or outreach.campaign or outreach.incident
    raw = None
    if outreach.playbook is not None:
        raw = outreach.playbook.trigger
    elif outreach.campaign is not None:
        raw = outreach.campaign.audience
    elif outreach.incident is not None:
        raw = outreach.incident.affected
    context = outreach.context if isinstance(outreach.context, dict) else {}
    values = context.get("metrics", context) if isinstance(context.get("metrics"), dict) else context
    why: dict[str, Any] = {"source": source, "text": "", "leaves": [], "raw": "", "values": values}
    if raw is None:
        return why
    try:
        condition = parse_condition(raw)
    except ConditionError:
        why["raw"] = json.dumps(raw, indent=2, sort_keys=True)
        return why
    why["text"] = render_text(condition)
    seen = set()
    for leaf in iter_leaves(condition):
        name = str(leaf.metric)
        if name in seen:
            continue
        seen.add(name)
        why["leaves"].append({"metric": name, "value": values.get(name, "—")})
    return why


def _item_context(request: TenantRequest, outreach: Outreach, draft: dict | None = None) -> dict[str, Any]:
    tenant = _tenant(request)
    customer = outreach.customer
    now = timezone.now()
    title = draft["title"] if draft else outreach.title
    body = draft["body"] if draft else outreach.body
    return {
        "o": outreach,
        "customer": customer,
        "attributes": sorted((customer.attributes or {}).items()),
        "risk": RiskScore.objects.for_tenant(tenant).filter(customer=customer).first(),
        "signals": Signal.objects.for_tenant(tenant).filter(customer=customer).order_by("-timestamp")[:25],
        "earlier": Outreach.objects.for_tenant(tenant)
        .filter(customer=customer)
        .exclude(pk=outreach.pk)
        .select_related("playbook")
        .order_by("-triggered_at")[:10],
        "history": OutreachEvent.objects.for_tenant(tenant)
        .filter(outreach=outreach)
        .select_related("actor")
        .order_by("-created_at")[:30],
        "why": _why(outreach),
        "draft_title": title,
        "draft_body": body,
        "preview": render_message(title=title, body=body, customer=customer),
        "unknown_vars": unknown_variables(body) + unknown_variables(title),
        "typed_html": typed_html(body) + typed_html(title),
        "risk_at_firing": outreach.risk_score,
        "claim_active": queue.claim_is_active(outreach, now),
        "mine": outreach.claimed_by_id == request.user.pk and queue.claim_is_active(outreach, now),
        "claim_expires": outreach.claimed_at + queue.CLAIM_TTL if outreach.claimed_at else None,
        "pending": outreach.status == Outreach.Status.PENDING_REVIEW,
        "can_act": _can_act(request),
        "snooze_default": (timezone.localtime(now, tenant.tz) + timedelta(days=1)).strftime("%Y-%m-%dT09:00"),
    }


@tenant_view(write_role=AGENT)
def item(request: TenantRequest, outreach_id: Any) -> HttpResponse:
    outreach = _get_outreach(request, outreach_id)
    return render(request, "campaigns/item.html", _item_context(request, outreach))


@require_POST
@tenant_view(AGENT)
def item_preview(request: TenantRequest, outreach_id: Any) -> HttpResponse:
    """Live preview of an edit (HTMX): renders, never saves."""
    outreach = _get_outreach(request, outreach_id)
    title = request.POST.get("title", "")[:200]
    body = request.POST.get("body", "")[:20_000]
    context = {
        "preview": render_message(title=title, body=body, customer=outreach.customer),
        "unknown_vars": unknown_variables(body) + unknown_variables(title),
        "typed_html": typed_html(body) + typed_html(title),
        "o": outreach,
    }
    return render(request, "campaigns/item.html#preview", context)


def _act(request: TenantRequest, outreach_id: Any, action: str) -> HttpResponse:
    tenant = _tenant(request)
    user = request.user
    outreach = _get_outreach(request, outreach_id)
    back_to_item = redirect("dashboard:item", tenant_slug=tenant.slug, outreach_id=outreach.pk)
    try:
        if action == "claim":
            queue.outreach_claim(tenant=tenant, outreach_id=outreach.pk, user=user)
            messages.success(request, "Claimed: it is yours for the next 15 minutes.")
            return back_to_item
        if action == "release":
            queue.outreach_release(tenant=tenant, outreach_id=outreach.pk, user=user)
            messages.info(request, "Released back to the queue.")
            return redirect("dashboard:queue", tenant_slug=tenant.slug)
        if action == "edit":
            queue.outreach_edit(
                tenant=tenant,
                outreach_id=outreach.pk,
                user=user,
                title=request.POST.get("title", ""),
                body=request.POST.get("body", "")[:20_000],
            )
            messages.success(request, "Saved.")
            return back_to_item
        if action == "send":
            edited = "title" in request.POST
            queue.outreach_send(
                tenant=tenant,
                outreach_id=outreach.pk,
                user=user,
                title=request.POST.get("title") if edited else None,
                body=request.POST.get("body", "").replace("\r\n", "\n")[:20_000] if edited else None,
            )
            messages.success(request, f"Sent to {outreach.customer}.")
        elif action == "reject":
            queue.outreach_reject(
                tenant=tenant,
                outreach_id=outreach.pk,
                user=user,
                reason=request.POST.get("reason", ""),
            )
            messages.success(request, "Rejected.")
        elif action == "snooze":
            until = _parse_until(request.POST.get("until", ""), tenant)
            if until is None:
                raise queue.QueueError("Pick a valid date to snooze until.")
            queue.outreach_snooze(tenant=tenant, outreach_id=outreach.pk, user=user, until=until)
            messages.success(request, f"Snoozed until {timezone.localtime(until, tenant.tz):%Y-%m-%d %H:%M}.")
    except queue.QueueError as exc:
        messages.error(request, str(exc))
        return back_to_item
    return redirect("dashboard:queue", tenant_slug=tenant.slug)


def _parse_until(value: str, tenant: Tenant) -> datetime | None:
    """The snooze date: None for a missing or impossible one (2025-02-30, year 9999 in UTC)."""
    try:
        parsed = parse_datetime(value) if "T" in value else None
        if parsed is None:
            day = parse_date(value) if value else None
            if day is None:
                return None
            parsed = datetime(day.year, day.month, day.day, 9, 0, tzinfo=tenant.tz)
        elif timezone.is_naive(parsed):
            parsed = timezone.make_aware(parsed, tenant.tz)
        parsed.astimezone(UTC)  # out of range once in UTC raises here, not in the database
    except (ValueError, OverflowError):
        return None
    return parsed


def _action_view(action: str) -> Any:
    @require_POST
    @tenant_view(AGENT)
    def view(request: TenantRequest, outreach_id: Any) -> HttpResponse:
        return _act(request, outreach_id, action)

    view.__name__ = f"item_{action}"
    return view


item_claim = _action_view("claim")
item_release = _action_view("release")
item_edit = _action_view("edit")
item_send = _action_view("send")
item_reject = _action_view("reject")
item_snooze = _action_view("snooze")
