"""Incidents: open (notice to the affected customers), notify newly affected, resolve (follow-up)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import Tenant, User
from accounts.services import audit_record
from campaigns.conditions import (
    ConditionError,
    parse_condition,
)
from campaigns.firing import Source, fire
from campaigns.models import Incident
from campaigns.rules import action_validate
from campaigns.webhook_events import incident_event_emit

log = logging.getLogger(__name__)


def _incident_source(incident: Incident) -> Source:
    return Source(
        kind="inc",
        id=incident.pk,
        action=action_validate({**incident.notice, "requires_review": False}, "notice"),
        condition=parse_condition(incident.affected, "affected"),
        overrides_budget=incident.overrides_budget,
        blocked_by_incidents=False,
    )


@transaction.atomic
def incident_open(
    *, tenant: Tenant, data: dict[str, Any], as_of: datetime | None = None, actor: User | None = None
) -> tuple[Incident, dict[str, Any]]:
    """Open an incident and notify the customers it affects now (more are notified by
    `incidents_notify` as they start to match while it is open)."""
    parse_condition(data["affected"], "affected")
    notice = action_validate({**data["notice"], "requires_review": False}, "notice")
    follow_up = (
        action_validate({**data["follow_up"], "requires_review": False}, "follow_up")
        if data.get("follow_up")
        else None
    )
    as_of = as_of or timezone.now()
    incident = Incident.objects.create(
        tenant=tenant,
        component=data["component"],
        title=data["title"],
        affected=data["affected"],
        notice=notice,
        follow_up=follow_up,
        overrides_budget=data.get("overrides_budget", True),
        opened_at=as_of,
    )
    audit_record(
        tenant=tenant,
        actor=actor,
        action="incident.open",
        target=incident,
        data={"component": incident.component},
    )
    incident_event_emit(incident=incident, event_type="incident.opened")
    return incident, fire(tenant=tenant, as_of=as_of, sources=[_incident_source(incident)])


EDITABLE = (Incident.Status.SUSPECTED, Incident.Status.OPEN)


@transaction.atomic
def incident_update(
    *,
    tenant: Tenant,
    incident: Incident,
    data: dict[str, Any],
    as_of: datetime | None = None,
    actor: User | None = None,
) -> tuple[bool, dict[str, Any]]:
    """Change a suspected or open incident's title, component, affected condition and messages
    (conditional on its status: False when it is no longer suspected or open). An open one then
    notifies the customers who newly match at once; those already notified keep what they got."""
    parse_condition(data["affected"], "affected")
    fields = {
        "component": data["component"],
        "title": data["title"],
        "affected": data["affected"],
        "notice": action_validate({**data["notice"], "requires_review": False}, "notice"),
        "follow_up": (
            action_validate({**data["follow_up"], "requires_review": False}, "follow_up")
            if data.get("follow_up")
            else None
        ),
        "overrides_budget": data.get("overrides_budget", incident.overrides_budget),
    }
    changed = Incident.objects.for_tenant(tenant).filter(pk=incident.pk, status__in=EDITABLE).update(**fields)
    if not changed:
        return False, {"fired": 0}
    incident.refresh_from_db()
    audit_record(
        tenant=tenant,
        actor=actor,
        action="incident.update",
        target=incident,
        data={"component": incident.component},
    )
    if incident.status != Incident.Status.OPEN:
        return True, {"fired": 0}
    return True, fire(tenant=tenant, as_of=as_of or timezone.now(), sources=[_incident_source(incident)])


def incidents_notify(*, tenant: Tenant, as_of: datetime) -> dict[str, Any]:
    """Notify customers who newly match an open incident's condition (one notice each)."""
    sources = []
    for incident in (
        Incident.objects.for_tenant(tenant).filter(status=Incident.Status.OPEN).order_by("opened_at")
    ):
        try:
            sources.append(_incident_source(incident))
        except ConditionError as exc:
            log.warning("incident %s: %s", incident.pk, exc)
    return fire(tenant=tenant, as_of=as_of, sources=sources)


def incident_resolve(
    *, tenant: Tenant, incident: Incident, as_of: datetime | None = None, actor: User | None = None
) -> tuple[bool, dict[str, Any]]:
    """Resolve (conditional update; False when it was not open) and send the follow-up, if
    any, to every customer who got the notice. Other nudges are no longer held back."""
    as_of = as_of or timezone.now()
    changed = (
        Incident.objects.for_tenant(tenant)
        .filter(pk=incident.pk, status=Incident.Status.OPEN)
        .update(status=Incident.Status.RESOLVED, resolved_at=as_of)
    )
    if not changed:
        return False, {"fired": 0}
    audit_record(tenant=tenant, actor=actor, action="incident.resolve", target=incident)
    incident_event_emit(incident=incident, event_type="incident.resolved", resolved_at=as_of)
    if not incident.follow_up:
        return True, {"fired": 0}
    source = Source(
        kind="incfu",
        id=incident.pk,
        action=action_validate({**incident.follow_up, "requires_review": False}, "follow_up"),
        overrides_budget=incident.overrides_budget,
        blocked_by_incidents=False,
    )
    notified = (
        "SELECT customer_id FROM campaigns_outreach WHERE tenant_id = %(tenant_id)s "
        "AND incident_id = %(incident_id)s AND status = 'sent' AND starts_with(dedupe_key, 'inc:')"
    )
    return True, fire(
        tenant=tenant,
        as_of=as_of,
        sources=[source],
        extra_candidates={0: (notified, {"tenant_id": tenant.pk, "incident_id": incident.pk})},
    )


def tenants_with_open_incidents() -> list[int]:
    return sorted(
        set(
            Incident.objects.unscoped()
            .filter(status=Incident.Status.OPEN)
            .values_list("tenant_id", flat=True)
        )
    )
