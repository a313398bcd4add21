"""Each customer's inbox as ready-made JSON, and the engagement events customers report.

The inbox is cached as JSON bytes next to a version number that every change to that
customer's outreach bumps (`inbox_bump`), so a poll when nothing is new runs no SQL at all
(and, within a second of the same process serving it, not even a cache round trip).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterable
from typing import Any

from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone

from campaigns.inbox.identity import settings_int
from campaigns.models import Outreach, OutreachEvent
from campaigns.rendering import render_message
from campaigns.webhook_events import inbox_event_emit
from proactive.models import Customer

INBOX_LIMIT = 20


EVENT_TYPES = ("seen", "clicked", "dismissed", "helpful", "not_helpful")


# Rendered inboxes this process served in the last LOCAL_SECONDS: a poll storm from many
# tabs costs no cache round trip, at the price of up to a second of staleness elsewhere.
_local_bodies: dict[str, tuple[float, bytes]] = {}


LOCAL_SECONDS = 1.0


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
    timeout = settings_int("INBOX_CACHE_SECONDS", 60)
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
    inbox_event_emit(tenant_id=tenant_id, outreach_id=outreach_id, kind=kind)
    if kind == "dismissed":
        inbox_bump(tenant_id=tenant_id, external_ids=[external_id])
    return True
