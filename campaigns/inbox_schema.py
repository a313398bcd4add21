"""The in-app inbox in the OpenAPI schema.

`campaigns.inbox.views` is plain Django views (no DRF: the hot path stays cheap), so
drf-spectacular cannot see it. This postprocessing hook adds its two operations by hand,
with their own security (publishable key + customer JWT), so `/api/schema/` describes
every `/api/v1` route and the fuzzing test covers the inbox too.
"""

from __future__ import annotations

from typing import Any

from campaigns.inbox.store import EVENT_TYPES

ERROR = {"$ref": "#/components/schemas/InboxError"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


ERRORS = {
    "401": _json(ERROR, "Unknown publishable key, or a missing or invalid customer token"),
    "403": _json(ERROR, "Origin not allowed for this tenant"),
    "429": _json(ERROR, "Rate limited; see Retry-After"),
}
SECURITY: list[dict[str, list[str]]] = [{"publishableKey": [], "customerToken": []}]

SCHEMAS = {
    "InboxError": {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}},
    "InboxMessage": {
        "type": "object",
        "required": ["id", "title", "body_html", "cta_label", "cta_url", "sent_at"],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "title": {"type": "string"},
            "body_html": {"type": "string", "description": "Sanitised HTML"},
            "cta_label": {"type": "string"},
            "cta_url": {"type": "string"},
            "sent_at": {"type": "string", "format": "date-time", "nullable": True},
        },
    },
    "Inbox": {
        "type": "object",
        "required": ["messages"],
        "properties": {"messages": {"type": "array", "items": {"$ref": "#/components/schemas/InboxMessage"}}},
    },
    "InboxEventIn": {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"type": "string", "enum": list(EVENT_TYPES)}},
    },
    "InboxEventOut": {
        "type": "object",
        "required": ["type", "recorded"],
        "properties": {
            "type": {"type": "string", "enum": list(EVENT_TYPES)},
            "recorded": {"type": "boolean"},
        },
    },
}

SECURITY_SCHEMES = {
    "publishableKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Publishable-Key",
        "description": "The tenant's publishable key (pk_...).",
    },
    "customerToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "HS256 JWT signed with the tenant's identity secret; sub = external_id, exp <= 24 h.",
    },
}

PATHS = {
    "/api/v1/inbox": {
        "get": {
            "operationId": "v1_inbox_list",
            "summary": "The customer's current in-app messages",
            "tags": ["v1"],
            "security": SECURITY,
            "responses": {"200": _json({"$ref": "#/components/schemas/Inbox"}, "Messages"), **ERRORS},
        }
    },
    "/api/v1/inbox/{outreach_id}/events": {
        "post": {
            "operationId": "v1_inbox_events_create",
            "summary": "Record an engagement event once",
            "tags": ["v1"],
            "security": SECURITY,
            "parameters": [
                {
                    "name": "outreach_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "format": "uuid"},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InboxEventIn"}}},
            },
            "responses": {
                "200": _json(
                    {"$ref": "#/components/schemas/InboxEventOut"}, "Recorded (or already recorded)"
                ),
                "400": _json(ERROR, "Unknown event type"),
                "404": _json(ERROR, "No such message for this customer"),
                **ERRORS,
            },
        }
    },
}


def add_inbox(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular POSTPROCESSING_HOOKS entry: add the inbox operations and their security."""
    result.setdefault("paths", {}).update(PATHS)
    components = result.setdefault("components", {})
    components.setdefault("schemas", {}).update(SCHEMAS)
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    return result
