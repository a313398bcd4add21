"""Subscriptions, emission and delivery of outbound webhooks.

Emission is an outbox: the delivery rows are inserted in the transaction that made the
change (one INSERT ... SELECT for a whole set of rows, only for subscriptions that want the
event), and the delivery task is enqueued once that transaction commits. A change that rolls
back therefore emits nothing, and a committed one always leaves its rows behind even when the
enqueue is lost: `deliveries_sweep` (beat) enqueues due rows nobody picked up.

Delivery is at least once. A worker claims a row (pending and due, or `delivering` with an
expired lease) under SKIP LOCKED, commits the claim and an attempt row, then POSTs; a worker
killed mid-request leaves the claim to expire, and the next one sends the same `webhook-id`
again. The answer is recorded only by the claim that made the attempt.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import Tenant, User
from accounts.services import audit_record
from webhooks import net
from webhooks.events import EVENT_TYPES
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.signing import new_secret, sign

log = logging.getLogger(__name__)

MAX_ENDPOINTS_PER_TENANT = 20
ENQUEUE_BATCH = 100
SWEEP_LIMIT = 5000


class WebhookError(ValueError):
    """A subscription the service refuses; `field` names the bad input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# ---- subscriptions -----------------------------------------------------------------------------


def _clean_events(events: Any) -> list[str]:
    if not isinstance(events, list) or not events:
        raise WebhookError("events", "list at least one event type")
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        raise WebhookError("events", f"{unknown[0]!r} is not one of {', '.join(EVENT_TYPES)}")
    return [e for e in EVENT_TYPES if e in events]


def endpoint_create(
    *, tenant: Tenant, url: str, events: Any, actor: User | None = None
) -> tuple[WebhookEndpoint, str]:
    """Subscribe `url`; returns the endpoint and its signing secret (shown once)."""
    events = _clean_events(events)
    url = (url or "").strip()
    if len(url) > 500:
        raise WebhookError("url", "at most 500 characters")
    try:
        net.resolve(url)
    except net.Unresolved:
        pass  # its DNS may not exist yet; every delivery resolves and checks the address again
    except net.UnsafeURL as exc:
        raise WebhookError("url", f"refused: {exc}") from exc
    with transaction.atomic():
        Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
        if WebhookEndpoint.objects.for_tenant(tenant).count() >= MAX_ENDPOINTS_PER_TENANT:
            raise WebhookError("url", f"at most {MAX_ENDPOINTS_PER_TENANT} webhooks per tenant")
        endpoint = WebhookEndpoint.objects.create(
            tenant=tenant, url=url, events=events, secret=new_secret(), created_by=actor
        )
        audit_record(
            tenant=tenant,
            actor=actor,
            action="webhook.create",
            target=endpoint,
            data={"url": url, "events": events},
        )
    return endpoint, endpoint.secret


@transaction.atomic
def endpoint_delete(*, tenant: Tenant, endpoint: WebhookEndpoint, actor: User | None = None) -> None:
    """Deletes the subscription with its delivery log, in three statements whatever its size."""
    audit_record(
        tenant=tenant, actor=actor, action="webhook.delete", target=endpoint, data={"url": endpoint.url}
    )
    deliveries = WebhookDelivery.objects.for_tenant(tenant).filter(endpoint=endpoint)
    WebhookAttempt.objects.for_tenant(tenant).filter(delivery__in=deliveries.values("pk"))._raw_delete(
        connection.alias
    )
    deliveries._raw_delete(connection.alias)
    WebhookEndpoint.objects.for_tenant(tenant).filter(pk=endpoint.pk).delete()


def endpoint_set_enabled(
    *, tenant: Tenant, endpoint: WebhookEndpoint, enabled: bool, actor: User | None = None
) -> bool:
    """Enable (with a clean failure record) or disable by hand; True when it changed."""
    scoped = WebhookEndpoint.objects.for_tenant(tenant).filter(pk=endpoint.pk, enabled=not enabled)
    if enabled:
        changed = scoped.update(
            enabled=True, failure_streak=0, failing_since=None, disabled_at=None, disabled_reason=""
        )
    else:
        changed = scoped.update(
            enabled=False, disabled_at=timezone.now(), disabled_reason="Disabled by hand."
        )
    if changed:
        action = "webhook.enable" if enabled else "webhook.disable"
        audit_record(tenant=tenant, actor=actor, action=action, target=endpoint)
    return bool(changed)


# ---- emission ----------------------------------------------------------------------------------


def subscribed(*, tenant_id: int, event_type: str) -> bool:
    return (
        WebhookEndpoint.objects.for_tenant(tenant_id)
        .filter(enabled=True, events__contains=[event_type])
        .exists()
    )


def events_emit_sql(*, tenant_id: int, event_type: str, rows_sql: str, params: Sequence[Any]) -> int:
    """Owe `event_type` to every enabled subscription of the tenant that wants it, for each row
    of `rows_sql` (the caller's SELECT of `(event key, data jsonb)`), in one INSERT ... SELECT.

    Call it inside the transaction that made the change. Keys already delivered to a
    subscription are skipped. Returns the number of deliveries created.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO webhooks_webhookdelivery (id, tenant_id, endpoint_id, event_type, event_key,"  # noqa: S608
            " payload, status, attempts, next_attempt_at, last_error, created_at) "
            "SELECT gen_random_uuid(), e.tenant_id, e.id, %s, x.key,"
            " jsonb_build_object('type', %s::text, 'timestamp', %s::text, 'data', x.data),"
            " 'pending', 0, now(), '', now() "
            "FROM webhooks_webhookendpoint e CROSS JOIN LATERAL ("
            f" SELECT k AS key, d AS data FROM ({rows_sql}) r(k, d)) x "
            "WHERE e.tenant_id = %s AND e.enabled AND e.events @> to_jsonb(ARRAY[%s::text]) "
            "ON CONFLICT (tenant_id, endpoint_id, event_key) DO NOTHING RETURNING id",
            [event_type, event_type, timezone.now().isoformat(), *params, tenant_id, event_type],
        )
        ids = [str(row[0]) for row in cur.fetchall()]
    _dispatch_on_commit(tenant_id, ids)
    return len(ids)


def event_emit(*, tenant_id: int, event_type: str, key: str, data: dict[str, Any]) -> int:
    """Owe one event (built in Python) to the subscriptions that want it."""
    return events_emit_sql(
        tenant_id=tenant_id,
        event_type=event_type,
        rows_sql="SELECT %s::text, %s::jsonb",
        params=[key, json.dumps(data, default=str)],
    )


def _dispatch_on_commit(tenant_id: int, delivery_ids: list[str]) -> None:
    if not delivery_ids:
        return

    def enqueue() -> None:
        from webhooks.tasks import webhook_deliver_task

        for start in range(0, len(delivery_ids), ENQUEUE_BATCH):
            webhook_deliver_task.delay(tenant_id, delivery_ids[start : start + ENQUEUE_BATCH])

    transaction.on_commit(enqueue)


# ---- delivery ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptOutcome:
    """What became of one call of `delivery_attempt`: `retry_in` seconds when the task should
    come back for this delivery (a scheduled retry, or a live claim held by another worker)."""

    state: str
    retry_in: float | None = None


def backoff_seconds(attempts: int) -> float:
    """Exponential: base x 2^(n-1), capped, plus up to 10% jitter so retries do not align."""
    base = float(settings.WEBHOOKS_RETRY_BASE_SECONDS)
    delay = min(base * 2 ** (attempts - 1), float(settings.WEBHOOKS_RETRY_MAX_SECONDS))
    return delay * (1 + random.random() / 10)  # noqa: S311 (jitter, not security)


def _lease() -> timedelta:
    return timedelta(seconds=float(settings.WEBHOOKS_LEASE_SECONDS))


def _claim(tenant_id: int, delivery_id: Any, now: datetime) -> tuple[WebhookDelivery | None, str]:
    scoped = WebhookDelivery.objects.for_tenant(tenant_id)
    with transaction.atomic():
        row = (
            scoped.filter(pk=delivery_id)
            .filter(
                Q(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
                | Q(status=WebhookDelivery.Status.DELIVERING, claimed_at__lt=now - _lease())
            )
            .select_related("endpoint")
            .select_for_update(skip_locked=True, of=("self",))
            .first()
        )
        if row is None:
            return None, "not_claimed"
        if row.status == WebhookDelivery.Status.DELIVERING:
            WebhookAttempt.objects.for_tenant(tenant_id).filter(delivery=row, finished_at=None).update(
                finished_at=now, error="interrupted: the worker stopped before the answer was recorded"
            )
        if not row.endpoint.enabled:
            scoped.filter(pk=row.pk).update(
                status=WebhookDelivery.Status.FAILED, claimed_at=None, next_attempt_at=None,
                last_error="not sent: the webhook is disabled",
            )  # fmt: skip
            return None, "endpoint_disabled"
        row.status, row.claimed_at, row.attempts = WebhookDelivery.Status.DELIVERING, now, row.attempts + 1
        row.save(update_fields=["status", "claimed_at", "attempts"])
        WebhookAttempt.objects.create(tenant_id=tenant_id, delivery=row, number=row.attempts, started_at=now)
    return row, "claimed"


def _not_claimed(tenant_id: int, delivery_id: Any, now: datetime) -> AttemptOutcome:
    row = WebhookDelivery.objects.for_tenant(tenant_id).filter(pk=delivery_id).first()
    if row is None:
        return AttemptOutcome("gone")
    if row.status == WebhookDelivery.Status.DELIVERING and row.claimed_at is not None:
        # Another worker holds it, or one that died did: look again once the lease has run out.
        left = (row.claimed_at + _lease() - now).total_seconds()
        return AttemptOutcome("busy", retry_in=max(left, 0) + 0.5)
    return AttemptOutcome(row.status)


def _headers(delivery: WebhookDelivery, body: bytes) -> dict[str, str]:
    timestamp = int(time.time())
    return {
        "Content-Type": "application/json",
        "User-Agent": "Proactive-Webhooks/1.0",
        "webhook-id": delivery.webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(
            secret=delivery.endpoint.secret, webhook_id=delivery.webhook_id, timestamp=timestamp, body=body
        ),
    }


def delivery_attempt(*, tenant_id: int, delivery_id: Any) -> AttemptOutcome:
    """Make one attempt at a delivery if it is due (idempotent: safe to call for any id, any
    number of times); records the attempt and schedules the next one on failure."""
    now = timezone.now()
    delivery, state = _claim(tenant_id, delivery_id, now)
    if delivery is None:
        return (
            AttemptOutcome(state)
            if state == "endpoint_disabled"
            else _not_claimed(tenant_id, delivery_id, now)
        )
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    status_code: int | None = None
    excerpt = error = ""
    started = time.perf_counter()
    try:
        status_code, excerpt = net.post(
            delivery.endpoint.url,
            body=body,
            headers=_headers(delivery, body),
            timeout=float(settings.WEBHOOKS_TIMEOUT_SECONDS),
        )
    except net.UnsafeURL as exc:
        error = f"refused: {exc}"
    except TimeoutError:
        error = f"timed out after {settings.WEBHOOKS_TIMEOUT_SECONDS} s"
    except (OSError, http.client.HTTPException) as exc:
        error = f"{type(exc).__name__}: {exc}"
    latency_ms = round((time.perf_counter() - started) * 1000)
    succeeded = status_code is not None and 200 <= status_code < 300
    if status_code is not None and not succeeded:
        error = f"HTTP {status_code}"
    return _record(delivery, now, succeeded, status_code, latency_ms, error[:300], excerpt)


def _record(
    delivery: WebhookDelivery,
    claimed_at: datetime,
    succeeded: bool,
    status_code: int | None,
    latency_ms: int,
    error: str,
    excerpt: str,
) -> AttemptOutcome:
    tenant_id = delivery.tenant_id
    finished = timezone.now()
    last = {
        "last_status_code": status_code,
        "last_latency_ms": latency_ms,
        "last_error": error,
        "claimed_at": None,
    }
    retry_in: float | None = None
    if succeeded:
        update = {
            "status": WebhookDelivery.Status.SUCCEEDED,
            "delivered_at": finished,
            "next_attempt_at": None,
        }
    elif delivery.attempts >= int(settings.WEBHOOKS_MAX_ATTEMPTS):
        update = {"status": WebhookDelivery.Status.FAILED, "next_attempt_at": None}
    else:
        retry_in = backoff_seconds(delivery.attempts)
        update = {
            "status": WebhookDelivery.Status.PENDING,
            "next_attempt_at": finished + timedelta(seconds=retry_in),
        }
    with transaction.atomic():
        WebhookAttempt.objects.for_tenant(tenant_id).filter(
            delivery=delivery, number=delivery.attempts, finished_at=None
        ).update(
            finished_at=finished, succeeded=succeeded, status_code=status_code, latency_ms=latency_ms,
            error=error, response_excerpt=excerpt[: net.MAX_EXCERPT],
        )  # fmt: skip
        # Only the claim that made this attempt may conclude it (a taken-over claim has moved on).
        mine = (
            WebhookDelivery.objects.for_tenant(tenant_id)
            .filter(pk=delivery.pk, status=WebhookDelivery.Status.DELIVERING, claimed_at=claimed_at)
            .update(**last, **update)
        )
        if not mine:
            return AttemptOutcome("superseded")
        _endpoint_health(delivery.endpoint, succeeded, finished, error)
    return AttemptOutcome(str(update["status"]), retry_in=retry_in)


def _endpoint_health(endpoint: WebhookEndpoint, succeeded: bool, now: datetime, error: str) -> None:
    """A success clears the failure run; a long run of failures (every attempt failing for
    WEBHOOKS_DISABLE_AFTER_HOURS and at least WEBHOOKS_DISABLE_AFTER_FAILURES attempts) disables."""
    scoped = WebhookEndpoint.objects.for_tenant(endpoint.tenant_id).filter(pk=endpoint.pk)
    if succeeded:
        scoped.exclude(failure_streak=0).update(failure_streak=0, failing_since=None)
        return
    scoped.filter(failing_since=None).update(failing_since=now)
    scoped.update(failure_streak=F("failure_streak") + 1)
    hours = float(settings.WEBHOOKS_DISABLE_AFTER_HOURS)
    failures = int(settings.WEBHOOKS_DISABLE_AFTER_FAILURES)
    current = scoped.values("failure_streak", "failing_since").first()
    since = current["failing_since"] if current else None
    if (
        current
        and since is not None
        and since <= now - timedelta(hours=hours)
        and current["failure_streak"] >= failures
    ):
        reason = (
            f"Disabled automatically: all {current['failure_streak']} attempts since "
            f"{since:%Y-%m-%d %H:%M} UTC failed (last: {error or 'no answer'})."
        )
        if scoped.filter(enabled=True).update(enabled=False, disabled_at=now, disabled_reason=reason[:300]):
            audit_record(tenant=endpoint.tenant, actor=None, action="webhook.auto_disable", target=endpoint,
                         data={"reason": reason})  # fmt: skip
            WebhookDelivery.objects.for_tenant(endpoint.tenant_id).filter(
                endpoint_id=endpoint.pk, status=WebhookDelivery.Status.PENDING
            ).update(status=WebhookDelivery.Status.FAILED, next_attempt_at=None,
                     last_error="not sent: the webhook was disabled")  # fmt: skip


def deliveries_sweep(*, now: datetime | None = None) -> int:
    """Across tenants (beat): enqueue deliveries that are due but that no task is known to
    carry (the enqueue after commit was lost, a retry message vanished, a worker died holding
    a claim). Each row is enqueued at most once per grace period. Returns how many."""
    now = now or timezone.now()
    grace = timedelta(seconds=float(settings.WEBHOOKS_SWEEP_GRACE_SECONDS))
    stale = Q(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now - grace) | Q(
        status=WebhookDelivery.Status.DELIVERING, claimed_at__lt=now - _lease()
    )
    with transaction.atomic():
        rows = list(
            WebhookDelivery.objects.unscoped()
            .filter(stale)
            .filter(Q(enqueued_at=None) | Q(enqueued_at__lte=now - grace))
            .order_by("next_attempt_at")
            .select_for_update(skip_locked=True)
            .values_list("pk", "tenant_id")[:SWEEP_LIMIT]
        )
        WebhookDelivery.objects.unscoped().filter(pk__in=[pk for pk, _ in rows]).update(enqueued_at=now)
        by_tenant: dict[int, list[str]] = {}
        for pk, tenant_id in rows:
            by_tenant.setdefault(tenant_id, []).append(str(pk))
        for tenant_id, ids in by_tenant.items():
            _dispatch_on_commit(tenant_id, ids)
    if rows:
        log.info("webhooks sweep enqueued %s deliveries", len(rows))
    return len(rows)


def deliveries_prune(*, now: datetime | None = None, limit: int = 10000) -> int:
    """Across tenants (beat): forget finished deliveries older than WEBHOOKS_RETENTION_DAYS,
    their attempts with them, at most `limit` a run. Returns how many deliveries."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=float(settings.WEBHOOKS_RETENTION_DAYS))
    with transaction.atomic():
        ids = list(
            WebhookDelivery.objects.unscoped()
            .filter(
                status__in=[WebhookDelivery.Status.SUCCEEDED, WebhookDelivery.Status.FAILED],
                created_at__lt=cutoff,
            )
            .values_list("pk", flat=True)[:limit]
        )
        WebhookAttempt.objects.unscoped().filter(delivery_id__in=ids)._raw_delete(connection.alias)
        WebhookDelivery.objects.unscoped().filter(pk__in=ids)._raw_delete(connection.alias)
    return len(ids)
