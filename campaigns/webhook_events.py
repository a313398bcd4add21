"""What the outreach layer tells tenants' webhooks: outreach and incident events.

The outreach data is built in SQL for a whole set of rows, so a firing run that writes
20,000 outreach emits their events in one statement per event type.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from campaigns.models import Incident
from webhooks.services import event_emit, events_emit_sql, subscribed

# `data` mirrors GET /api/v1/outreach, plus engagement and review fields.
_OUTREACH_ROWS = """
SELECT %s || o.id::text, jsonb_build_object(
    'id', o.id, 'customer', c.external_id, 'playbook', o.playbook_id, 'campaign', o.campaign_id,
    'incident', o.incident_id, 'status', o.status, 'holdout', o.holdout, 'channel', o.channel,
    'triggered_at', o.triggered_at, 'sent_at', o.sent_at, 'title', o.title,
    'seen_at', o.seen_at, 'clicked_at', o.clicked_at, 'dismissed_at', o.dismissed_at,
    'feedback', nullif(o.feedback, ''), 'reject_reason', nullif(o.reject_reason, ''),
    'suppressed_reason', nullif(o.suppressed_reason, ''))
FROM campaigns_outreach o
JOIN proactive_customer c ON c.tenant_id = o.tenant_id AND c.id = o.customer_id
WHERE o.tenant_id = %s AND o.id = ANY(%s::uuid[])
"""

INBOX_EVENTS = {
    "seen": "outreach.seen",
    "clicked": "outreach.clicked",
    "dismissed": "outreach.dismissed",
    "helpful": "outreach.feedback",
    "not_helpful": "outreach.feedback",
}


def outreach_events_emit(*, tenant_id: int, event_type: str, outreach_ids: Iterable[Any]) -> int:
    """Call inside the transaction that changed the rows; one event per outreach and subscription."""
    ids = [str(i) for i in outreach_ids]
    if not ids or not subscribed(tenant_id=tenant_id, event_type=event_type):
        return 0
    return events_emit_sql(
        tenant_id=tenant_id,
        event_type=event_type,
        rows_sql=_OUTREACH_ROWS,
        params=[f"{event_type}:", tenant_id, ids],
    )


def inbox_event_emit(*, tenant_id: int, outreach_id: Any, kind: str) -> int:
    return outreach_events_emit(
        tenant_id=tenant_id, event_type=INBOX_EVENTS[kind], outreach_ids=[outreach_id]
    )


def incident_event_emit(*, incident: Incident, event_type: str, resolved_at: datetime | None = None) -> int:
    resolved_at = resolved_at or incident.resolved_at
    data = {
        "id": str(incident.pk),
        "component": incident.component,
        "title": incident.title,
        "status": event_type.removeprefix("incident.").replace("opened", "open"),
        "opened_at": incident.opened_at.isoformat() if incident.opened_at else None,
        "resolved_at": resolved_at.isoformat() if resolved_at else None,
        "affected": incident.affected,
        "overrides_budget": incident.overrides_budget,
        "detection": incident.detection or None,  # what the monitor measured, for detected incidents
    }
    return event_emit(
        tenant_id=incident.tenant_id, event_type=event_type, key=f"{event_type}:{incident.pk}", data=data
    )
