"""The in-app inbox: what a tenant's customer's browser polls, and the events it reports.

The views are plain Django views (no DRF, no server-key authentication, no session, no
cookies). A request names the tenant with `X-Publishable-Key` and the customer with a
JWT (HS256, `sub` = external_id, `exp` required and at most 24 h ahead) signed with the
tenant's identity secret.

The hot path is cheap: the tenant behind a publishable key is kept in process memory
for a few seconds, and each customer's inbox is cached as ready-made JSON bytes next
to a version number that every change to that customer's outreach bumps
(`inbox_bump`), so a poll when nothing is new runs no SQL at all (and, within a
second of the same process serving it, not even a cache round trip).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt
from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from accounts.models import Tenant
from accounts.rate_limits import FixedWindowLimiter
from campaigns.models import Outreach, OutreachEvent
from campaigns.rendering import render_message
from proactive.models import Customer

MAX_TOKEN_LIFETIME = timedelta(hours=24)
CLOCK_LEEWAY_SECONDS = 60
INBOX_LIMIT = 20
TENANT_MEMO_SECONDS = 10.0
EVENT_TYPES = ("seen", "clicked", "dismissed", "helpful", "not_helpful")
CORS_HEADERS = "Authorization, Content-Type, X-Publishable-Key"


@dataclass(frozen=True)
class InboxTenant:
    id: int
    identity_secret: str
    allowed_origins: frozenset[str]


class InboxAuthError(Exception):
    status = 401


class InboxForbidden(InboxAuthError):
    status = 403


_tenant_memo: dict[str, tuple[float, InboxTenant | None]] = {}
# Rendered inboxes this process served in the last LOCAL_SECONDS: a poll storm from many
# tabs costs no cache round trip, at the price of up to a second of staleness elsewhere.
_local_bodies: dict[str, tuple[float, bytes]] = {}
LOCAL_SECONDS = 1.0


def _settings_int(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def tenant_for_publishable_key(key: str) -> InboxTenant | None:
    """The tenant behind a publishable key, memoised per process for TENANT_MEMO_SECONDS.

    Rotating a key or the identity secret therefore takes effect within seconds.
    """
    now = time.monotonic()
    hit = _tenant_memo.get(key)
    if hit is not None and now - hit[0] < TENANT_MEMO_SECONDS:
        return hit[1]
    row = (
        Tenant.objects.filter(publishable_key=key)
        .values_list("id", "identity_secret", "allowed_origins")
        .first()
    )
    found = None
    if row is not None:
        found = InboxTenant(id=row[0], identity_secret=row[1], allowed_origins=frozenset(row[2] or ()))
    if len(_tenant_memo) > 10_000:
        _tenant_memo.clear()
    _tenant_memo[key] = (now, found)
    return found


def customer_from_token(token: str, tenant: InboxTenant) -> str:
    """Verify a customer JWT for `tenant` and return its `sub` (the customer's external_id)."""
    try:
        claims = jwt.decode(
            token,
            tenant.identity_secret,
            algorithms=["HS256"],
            options={"require": ["exp", "sub"]},
            leeway=CLOCK_LEEWAY_SECONDS,
        )
    except jwt.PyJWTError as exc:
        raise InboxAuthError(f"invalid token: {exc}") from exc
    if not isinstance(claims["exp"], int | float) or claims["exp"] > time.time() + (
        MAX_TOKEN_LIFETIME.total_seconds() + CLOCK_LEEWAY_SECONDS
    ):
        raise InboxAuthError("invalid token: exp more than 24 h ahead")
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise InboxAuthError("invalid token: bad sub")
    return sub


def _customer_hash(external_id: str) -> str:
    return hashlib.blake2b(external_id.encode(), digest_size=12).hexdigest()


def _cache_keys(tenant_id: int, external_id: str) -> tuple[str, str]:
    h = _customer_hash(external_id)
    return f"inbox:ver:{tenant_id}:{h}", f"inbox:body:{tenant_id}:{h}"


def inbox_bump(*, tenant_id: int, external_ids: Iterable[str]) -> None:
    """Invalidate these customers' cached inboxes (call after the change is committed)."""
    stamp = uuid.uuid4().hex
    keys = {}
    for external_id in set(external_ids):
        ver_key, body_key = _cache_keys(tenant_id, external_id)
        keys[ver_key] = stamp
        _local_bodies.pop(body_key, None)
    if keys:
        cache.set_many(keys, timeout=None)


def inbox_messages(*, tenant_id: int, external_id: str, now: Any = None) -> tuple[list[dict], Any]:
    """The customer's current messages as plain dicts, and when the earliest of them expires."""
    now = now or timezone.now()
    customer = (
        Customer.objects.for_tenant(tenant_id)
        .filter(external_id=external_id)
        .values("id", "name", "email", "external_id", "attributes")
        .first()
    )
    if customer is None:
        return [], None
    rows = list(
        Outreach.objects.for_tenant(tenant_id)
        .filter(
            customer_id=customer["id"],
            status=Outreach.Status.SENT,
            channel=Outreach.Channel.IN_APP,
            dismissed_at=None,
        )
        .filter(Q(expires_at=None) | Q(expires_at__gt=now))
        .order_by("-sent_at")
        .values("id", "title", "body", "cta_label", "cta_url", "sent_at", "expires_at")[:INBOX_LIMIT]
    )
    messages = []
    for row in rows:
        rendered = render_message(title=row["title"], body=row["body"], customer=customer)
        messages.append(
            {
                "id": str(row["id"]),
                "title": rendered.title,
                "body_html": rendered.body_html,
                "cta_label": row["cta_label"],
                "cta_url": row["cta_url"] if row["cta_url"].startswith(("https://", "http://")) else "",
                "sent_at": row["sent_at"].isoformat() if row["sent_at"] else None,
            }
        )
    expiries = [r["expires_at"] for r in rows if r["expires_at"] is not None]
    return messages, min(expiries) if expiries else None


def inbox_payload(*, tenant_id: int, external_id: str) -> bytes:
    """The JSON body of GET /inbox, from the cache when this customer's version has not moved."""
    ver_key, body_key = _cache_keys(tenant_id, external_id)
    local = _local_bodies.get(body_key)
    if local is not None and time.monotonic() - local[0] < LOCAL_SECONDS:
        return local[1]
    got = cache.get_many([ver_key, body_key])
    version = got.get(ver_key)
    cached = got.get(body_key)
    if cached is not None and cached[0] == version:
        _remember_locally(body_key, cached[1])
        return cached[1]
    messages, earliest_expiry = inbox_messages(tenant_id=tenant_id, external_id=external_id)
    body = json.dumps({"messages": messages}, separators=(",", ":")).encode()
    timeout = _settings_int("INBOX_CACHE_SECONDS", 60)
    if earliest_expiry is not None:
        timeout = max(1, min(timeout, int((earliest_expiry - timezone.now()).total_seconds())))
    cache.set(body_key, (version, body), timeout=timeout)
    _remember_locally(body_key, body)
    return body


def _remember_locally(body_key: str, body: bytes) -> None:
    if len(_local_bodies) > 50_000:
        _local_bodies.clear()
    _local_bodies[body_key] = (time.monotonic(), body)


def inbox_event_record(*, tenant_id: int, external_id: str, outreach_id: Any, kind: str) -> bool | None:
    """Record an engagement event once. None: no such message for this customer; False: already recorded."""
    now = timezone.now()
    base = Outreach.objects.for_tenant(tenant_id).filter(
        pk=outreach_id,
        customer__external_id=external_id,
        status=Outreach.Status.SENT,
        channel=Outreach.Channel.IN_APP,
    )
    if kind in ("helpful", "not_helpful"):
        changed = base.filter(feedback="").update(feedback=kind, feedback_at=now)
    else:
        changed = base.filter(**{f"{kind}_at": None}).update(**{f"{kind}_at": now})
    if not changed:
        return False if base.exists() else None
    OutreachEvent.objects.create(tenant_id=tenant_id, outreach_id=outreach_id, kind=kind, created_at=now)
    if kind == "dismissed":
        inbox_bump(tenant_id=tenant_id, external_ids=[external_id])
    return True


# Batched: the inbox is the hottest path (every page view of every end customer).
INBOX_LIMITER = FixedWindowLimiter("publishable-key", batch=25, flush_seconds=1.0)


def _rate_limited(publishable_key: str) -> int:
    """Seconds to wait when this publishable key is over its per-minute budget, else 0."""
    wait = INBOX_LIMITER.hit(publishable_key, _settings_int("INBOX_RATE_LIMIT_PER_MINUTE", 60000))
    return max(1, math.ceil(wait)) if wait else 0


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
        raise InboxAuthError("unknown publishable key")
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
        response = _json(exc.status, {"detail": str(exc)})
        if exc.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="inbox"'
        return response
    wait = _rate_limited(request.headers["X-Publishable-Key"])
    if wait:
        response = _json(429, {"detail": "rate limit exceeded"}, origin)
        response["Retry-After"] = str(wait)
        return response
    return tenant, external_id, origin


@csrf_exempt
def inbox_list(request: HttpRequest) -> HttpResponse:
    """GET /api/v1/inbox -> {"messages": [...]}."""
    if request.method == "OPTIONS":
        return _preflight(request)
    if request.method != "GET":
        return _json(405, {"detail": "method not allowed"})
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
        return _json(405, {"detail": "method not allowed"})
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
