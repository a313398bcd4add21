"""The inbox HTTP endpoints an end customer's browser calls: plain Django views (no DRF, no
server key, no session, no cookies), CORS only for the tenant's allowed origins, and a
per-publishable-key rate limit (and a per-client-IP one for requests with an unknown key, so
a scanner trying keys is limited without touching any tenant's budget)."""

from __future__ import annotations

import json
import math
import time
import uuid

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from accounts.models import Tenant
from accounts.rate_limits import Budget, FixedWindowLimiter
from campaigns.inbox.identity import (
    TENANT_MEMO_SECONDS,
    InboxAuthError,
    InboxForbidden,
    InboxTenant,
    customer_from_token,
    settings_int,
    tenant_for_publishable_key,
)
from campaigns.inbox.store import (
    EVENT_TYPES,
    inbox_event_record,
    inbox_payload,
)

CORS_HEADERS = "Authorization, Content-Type, X-Publishable-Key"


# Batched: the inbox is the hottest path (every page view of every end customer).
INBOX_LIMITER = FixedWindowLimiter("publishable-key", batch=25, flush_seconds=1.0)


def _rate_limited(publishable_key: str) -> int:
    """Seconds to wait when this publishable key is over its per-minute budget, else 0."""
    wait = INBOX_LIMITER.hit(publishable_key, settings_int("INBOX_RATE_LIMIT_PER_MINUTE", 60000))
    return max(1, math.ceil(wait)) if wait else 0


# Requests whose publishable key names no tenant (missing, malformed, unknown), per client IP
# (REMOTE_ADDR: gunicorn sets it from X-Forwarded-For for FORWARDED_ALLOW_IPS only). A known key
# never counts here, so no tenant is ever limited because of another tenant or of a scanner.
UNKNOWN_KEY_BUDGET = Budget(
    FixedWindowLimiter("unknown-publishable-key"), "INBOX_UNKNOWN_KEY_RATE_LIMIT_PER_MINUTE", 30
)


class UnknownPublishableKey(InboxAuthError):
    pass


_origin_memo: dict[str, tuple[float, bool]] = {}


def _origin_known(origin: str) -> bool:
    """Whether any tenant allows `origin` (for preflights, which carry no publishable key)."""
    now = time.monotonic()
    hit = _origin_memo.get(origin)
    if hit is not None and now - hit[0] < TENANT_MEMO_SECONDS:
        return hit[1]
    known = Tenant.objects.filter(allowed_origins__contains=[origin]).exists()
    if len(_origin_memo) > 10_000:
        _origin_memo.clear()
    _origin_memo[origin] = (now, known)
    return known


def _own_origin(request: HttpRequest) -> str:
    return f"{request.scheme}://{request.get_host()}"


def _json(status: int, payload: dict | bytes, origin: str | None = None) -> HttpResponse:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    response = HttpResponse(body, status=status, content_type="application/json")
    response["Cache-Control"] = "no-store"
    response["Vary"] = "Origin"
    if origin:
        response["Access-Control-Allow-Origin"] = origin
    return response


def _not_allowed(allow: str) -> HttpResponse:
    response = _json(405, {"detail": "method not allowed"})
    response["Allow"] = allow
    return response


def _preflight(request: HttpRequest) -> HttpResponse:
    origin = request.headers.get("Origin", "")
    response = HttpResponse(status=204)
    response["Vary"] = "Origin"
    if origin and _origin_known(origin):
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response["Access-Control-Allow-Headers"] = CORS_HEADERS
        response["Access-Control-Max-Age"] = "600"
    return response


def _authenticate(request: HttpRequest) -> tuple[InboxTenant, str, str | None]:
    """(tenant, customer external_id, origin to echo) or InboxAuthError."""
    key = request.headers.get("X-Publishable-Key", "")
    tenant = tenant_for_publishable_key(key) if key.startswith("pk_") else None
    if tenant is None:
        raise UnknownPublishableKey("unknown publishable key")
    origin = request.headers.get("Origin")
    if origin and origin not in tenant.allowed_origins and origin != _own_origin(request):
        raise InboxForbidden("origin not allowed for this tenant")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InboxAuthError("missing customer token")
    return tenant, customer_from_token(token.strip(), tenant), origin


def _guarded(request: HttpRequest) -> tuple[InboxTenant, str, str | None] | HttpResponse:
    try:
        tenant, external_id, origin = _authenticate(request)
    except InboxAuthError as exc:
        if isinstance(exc, UnknownPublishableKey):
            wait = UNKNOWN_KEY_BUDGET.wait(request.META.get("REMOTE_ADDR") or "unknown")
            if wait:
                return _too_many(wait, None)
        response = _json(exc.status, {"detail": str(exc)})
        if exc.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="inbox"'
        return response
    wait = _rate_limited(request.headers["X-Publishable-Key"])
    if wait:
        return _too_many(wait, origin)
    return tenant, external_id, origin


def _too_many(wait: int, origin: str | None) -> HttpResponse:
    response = _json(429, {"detail": "rate limit exceeded"}, origin)
    response["Retry-After"] = str(wait)
    return response


@csrf_exempt
def inbox_list(request: HttpRequest) -> HttpResponse:
    """GET /api/v1/inbox -> {"messages": [...]}."""
    if request.method == "OPTIONS":
        return _preflight(request)
    if request.method != "GET":
        return _not_allowed("GET, OPTIONS")
    guarded = _guarded(request)
    if isinstance(guarded, HttpResponse):
        return guarded
    tenant, external_id, origin = guarded
    return _json(200, inbox_payload(tenant_id=tenant.id, external_id=external_id), origin)


@csrf_exempt
def inbox_event(request: HttpRequest, outreach_id: uuid.UUID) -> HttpResponse:
    """POST /api/v1/inbox/{id}/events {"type": ...}; each type is recorded once."""
    if request.method == "OPTIONS":
        return _preflight(request)
    if request.method != "POST":
        return _not_allowed("POST, OPTIONS")
    guarded = _guarded(request)
    if isinstance(guarded, HttpResponse):
        return guarded
    tenant, external_id, origin = guarded
    try:
        kind = json.loads(request.body or b"{}").get("type")
    except (ValueError, AttributeError, RecursionError):
        kind = None
    if kind not in EVENT_TYPES:
        return _json(400, {"detail": f"type must be one of {', '.join(EVENT_TYPES)}"}, origin)
    recorded = inbox_event_record(
        tenant_id=tenant.id, external_id=external_id, outreach_id=outreach_id, kind=kind
    )
    if recorded is None:
        return _json(404, {"detail": "no such message"}, origin)
    return _json(200, {"type": kind, "recorded": recorded}, origin)
