"""The event types a tenant can subscribe to (contract v1.1, "Outbound webhooks")."""

from __future__ import annotations

EVENT_TYPES: tuple[str, ...] = (
    "outreach.created",
    "outreach.sent",
    "outreach.seen",
    "outreach.clicked",
    "outreach.dismissed",
    "outreach.feedback",
    "outreach.rejected",
    "incident.suspected",
    "incident.opened",
    "incident.resolved",
    "model.promoted",
)
