"""The agents' review queue: selectors and services for outreach in `pending_review`.

Claims are rows, not locks: `claimed_by`/`claimed_at` say who works an item, and a
claim older than CLAIM_TTL is free again. Every change is a conditional update that
only applies while the item is still pending and free (or the actor's own), so two
agents can never both act on one item; "claim next" picks with
`SELECT ... FOR UPDATE SKIP LOCKED` so concurrent agents do not wait on each other.
Every action writes an OutreachEvent and an audit row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery import shared_task
from django.db import transaction
from django.db.models import DurationField, ExpressionWrapper, F, Q, QuerySet
from django.utils import timezone

from accounts.models import Tenant, User
from accounts.services import audit_record
from campaigns.delivery import outreach_deliver_on_commit
from campaigns.models import Outreach, OutreachEvent, Priority
from campaigns.webhook_events import outreach_events_emit

CLAIM_TTL = timedelta(minutes=15)
MAX_REASON = 500
EXPIRY_CHUNK = 1000
QUEUE_STATUSES = (
    Outreach.Status.PENDING_REVIEW,
    Outreach.Status.SNOOZED,
    Outreach.Status.SENT,
    Outreach.Status.REJECTED,
    Outreach.Status.EXPIRED,
)


class QueueError(Exception):
    """An action the queue refuses; the message is shown to the agent."""


class ClaimConflict(QueueError):
    pass


@dataclass(frozen=True)
class QueueFilters:
    status: str = Outreach.Status.PENDING_REVIEW
    playbook: str | None = None
    priority: int | None = None

    @classmethod
    def from_query(cls, query: Any) -> QueueFilters:
        status = query.get("status") or Outreach.Status.PENDING_REVIEW
        if status not in QUEUE_STATUSES:
            status = Outreach.Status.PENDING_REVIEW
        priority = query.get("priority")
        playbook = query.get("playbook") or None
        try:
            playbook = str(uuid.UUID(str(playbook))) if playbook else None
        except ValueError:
            playbook = None
        return cls(
            status=status,
            playbook=playbook,
            priority=int(priority) if priority in {str(p) for p in Priority.values} else None,
        )


@dataclass
class BulkResult:
    done: list[str] = field(default_factory=list)
    skipped: int = 0


def claim_cutoff(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - CLAIM_TTL


def _free_for(user: User, now: datetime) -> Q:
    return Q(claimed_by=None) | Q(claimed_at__lt=claim_cutoff(now)) | Q(claimed_by=user)


def queue_ordering() -> list[Any]:
    return ["-priority", F("risk_score").desc(nulls_last=True), "triggered_at", "id"]


def queue_list(*, tenant: Tenant, filters: QueueFilters) -> QuerySet[Outreach]:
    """The queue, most urgent first: priority, then risk, then the oldest."""
    qs = Outreach.objects.for_tenant(tenant).filter(status=filters.status)
    if filters.playbook:
        qs = qs.filter(playbook_id=filters.playbook)
    if filters.priority is not None:
        qs = qs.filter(priority=filters.priority)
    return qs.order_by(*queue_ordering())


def outreach_get(*, tenant: Tenant, outreach_id: Any) -> Outreach | None:
    return (
        Outreach.objects.for_tenant(tenant)
        .select_related("customer", "playbook", "campaign", "incident", "claimed_by", "reviewed_by")
        .filter(pk=outreach_id)
        .first()
    )


def _reload(tenant: Tenant, outreach_id: Any) -> Outreach:
    outreach = outreach_get(tenant=tenant, outreach_id=outreach_id)
    if outreach is None:
        raise QueueError("This item does not exist.")
    return outreach


def claim_is_active(outreach: Outreach, now: datetime | None = None) -> bool:
    return (
        outreach.claimed_by_id is not None
        and outreach.claimed_at is not None
        and (outreach.claimed_at >= claim_cutoff(now))
    )


def _record(tenant: Tenant, user: User, outreach_id: Any, kind: str, data: dict | None = None) -> None:
    OutreachEvent.objects.create(
        tenant=tenant, outreach_id=outreach_id, kind=kind, actor=user, data=data or {}
    )
    if kind == "rejected":
        outreach_events_emit(tenant_id=tenant.pk, event_type="outreach.rejected", outreach_ids=[outreach_id])
    audit_record(
        tenant=tenant,
        actor=user,
        action=f"outreach.{kind}",
        data={"outreach": str(outreach_id), **(data or {})},
    )


def outreach_claim_next(
    *, tenant: Tenant, user: User, filters: QueueFilters | None = None
) -> Outreach | None:
    """Give the agent the most urgent free item, atomically; their own live claim comes first."""
    now = timezone.now()
    with transaction.atomic():
        pending = Outreach.objects.for_tenant(tenant).filter(status=Outreach.Status.PENDING_REVIEW)
        mine = (
            pending.filter(claimed_by=user, claimed_at__gte=claim_cutoff(now))
            .order_by(*queue_ordering())
            .values_list("pk", flat=True)
            .first()
        )
        if mine is not None:
            return outreach_get(tenant=tenant, outreach_id=mine)
        base = queue_list(tenant=tenant, filters=filters or QueueFilters())
        picked = (
            base.filter(Q(claimed_by=None) | Q(claimed_at__lt=claim_cutoff(now)))
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("pk", flat=True)
            .first()
        )
        if picked is None:
            return None
        Outreach.objects.for_tenant(tenant).filter(pk=picked).update(claimed_by=user, claimed_at=now)
        _record(tenant, user, picked, "claimed")
    return outreach_get(tenant=tenant, outreach_id=picked)


def outreach_claim(*, tenant: Tenant, outreach_id: Any, user: User) -> Outreach:
    """Claim one item; ClaimConflict when another agent holds it or it left the queue."""
    now = timezone.now()
    with transaction.atomic():
        changed = (
            Outreach.objects.for_tenant(tenant)
            .filter(pk=outreach_id, status=Outreach.Status.PENDING_REVIEW)
            .filter(_free_for(user, now))
            .update(claimed_by=user, claimed_at=now)
        )
        if not changed:
            raise _conflict(tenant, outreach_id)
        _record(tenant, user, outreach_id, "claimed")
    return _reload(tenant, outreach_id)


def outreach_release(*, tenant: Tenant, outreach_id: Any, user: User) -> bool:
    with transaction.atomic():
        changed = (
            Outreach.objects.for_tenant(tenant)
            .filter(pk=outreach_id, claimed_by=user, status=Outreach.Status.PENDING_REVIEW)
            .update(claimed_by=None, claimed_at=None)
        )
        if changed:
            _record(tenant, user, outreach_id, "released")
    return bool(changed)


def _conflict(tenant: Tenant, outreach_id: Any) -> QueueError:
    current = outreach_get(tenant=tenant, outreach_id=outreach_id)
    if current is None:
        return QueueError("This item does not exist.")
    if current.status != Outreach.Status.PENDING_REVIEW:
        state = current.get_status_display().lower()
        return QueueError(f"This item is no longer waiting for review (it is {state}).")
    return ClaimConflict(f"{current.claimed_by} is working on this item.")


def _act(
    tenant: Tenant, user: User, outreach_id: Any, kind: str, updates: dict[str, Any], data: dict | None = None
) -> Outreach:
    """Apply `updates` if the item is still pending and free or the user's; record it."""
    now = timezone.now()
    with transaction.atomic():
        changed = (
            Outreach.objects.for_tenant(tenant)
            .filter(pk=outreach_id, status=Outreach.Status.PENDING_REVIEW)
            .filter(_free_for(user, now))
            .update(**updates)
        )
        if not changed:
            raise _conflict(tenant, outreach_id)
        _record(tenant, user, outreach_id, kind, data)
    return _reload(tenant, outreach_id)


def outreach_edit(*, tenant: Tenant, outreach_id: Any, user: User, title: str, body: str) -> Outreach:
    """Change the message before it goes out; the editor takes (or keeps) the claim."""
    title = (title or "").strip()
    if not title:
        raise QueueError("The title cannot be empty.")
    if len(title) > 200:
        raise QueueError("The title is limited to 200 characters.")
    now = timezone.now()
    return _act(
        tenant,
        user,
        outreach_id,
        "edited",
        {"title": title, "body": body or "", "claimed_by": user, "claimed_at": now},
        {"title": title, "body_length": len(body or "")},
    )


def _review_updates(user: User, status: str, now: datetime) -> dict[str, Any]:
    return {"status": status, "reviewed_by": user, "reviewed_at": now, "claimed_by": None, "claimed_at": None}


def outreach_send(
    *, tenant: Tenant, outreach_id: Any, user: User, title: str | None = None, body: str | None = None
) -> Outreach:
    """Send it; a title/body passed (the editor's unsaved text) is saved first, in the same
    transaction, so what the agent last saw is what the customer gets."""
    now = timezone.now()
    with transaction.atomic():
        if title is not None:
            current = (
                Outreach.objects.for_tenant(tenant).filter(pk=outreach_id).values("title", "body").first()
            )
            if current and (current["title"], current["body"]) != (title.strip(), body or ""):
                outreach_edit(tenant=tenant, outreach_id=outreach_id, user=user, title=title, body=body or "")
        outreach = _act(
            tenant,
            user,
            outreach_id,
            "sent",
            {**_review_updates(user, Outreach.Status.SENT, now), "sent_at": now},
        )
        outreach_deliver_on_commit(tenant=tenant, outreach_ids=[outreach.pk])
    return outreach


def _clean_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise QueueError("Say why it is rejected: the reason feeds the playbook's statistics.")
    return reason[:MAX_REASON]


def outreach_reject(*, tenant: Tenant, outreach_id: Any, user: User, reason: str) -> Outreach:
    reason = _clean_reason(reason)
    now = timezone.now()
    return _act(
        tenant,
        user,
        outreach_id,
        "rejected",
        {**_review_updates(user, Outreach.Status.REJECTED, now), "reject_reason": reason},
        {"reason": reason},
    )


def outreach_snooze(*, tenant: Tenant, outreach_id: Any, user: User, until: datetime) -> Outreach:
    """Put an item aside until `until`; it comes back to the queue then, with a fresh review window."""
    now = timezone.now()
    if until <= now:
        raise QueueError("Snooze until a time in the future.")
    if until > now + timedelta(days=90):
        raise QueueError("Snooze for at most 90 days.")
    current = outreach_get(tenant=tenant, outreach_id=outreach_id)
    hours = current.playbook.review_expiry_hours if current and current.playbook else 72
    return _act(
        tenant,
        user,
        outreach_id,
        "snoozed",
        {
            **_review_updates(user, Outreach.Status.SNOOZED, now),
            "snoozed_until": until,
            "review_deadline": until + timedelta(hours=hours),
        },
        {"until": until.isoformat()},
    )


def outreach_bulk(
    *, tenant: Tenant, user: User, outreach_ids: list[Any], action: str, reason: str = ""
) -> BulkResult:
    """Send or reject many items at once; items another agent holds or that left the queue are skipped."""
    if action not in ("send", "reject"):
        raise QueueError("Unknown bulk action.")
    if action == "reject":
        reason = _clean_reason(reason)
    ids = list(dict.fromkeys(str(i) for i in outreach_ids))[:500]
    now = timezone.now()
    result = BulkResult()
    with transaction.atomic():
        locked = list(
            Outreach.objects.for_tenant(tenant)
            .filter(pk__in=ids, status=Outreach.Status.PENDING_REVIEW)
            .filter(_free_for(user, now))
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        if action == "send":
            updates = {**_review_updates(user, Outreach.Status.SENT, now), "sent_at": now}
            kind = "sent"
        else:
            updates = {**_review_updates(user, Outreach.Status.REJECTED, now), "reject_reason": reason}
            kind = "rejected"
        Outreach.objects.for_tenant(tenant).filter(pk__in=locked).update(**updates)
        data = {"bulk": True, **({"reason": reason} if action == "reject" else {})}
        OutreachEvent.objects.bulk_create(
            [OutreachEvent(tenant=tenant, outreach_id=pk, kind=kind, actor=user, data=data) for pk in locked]
        )
        audit_record(
            tenant=tenant,
            actor=user,
            action=f"outreach.bulk_{action}",
            data={"outreach": [str(pk) for pk in locked], **data},
        )
        if action == "send":
            outreach_deliver_on_commit(tenant=tenant, outreach_ids=locked)
        else:
            outreach_events_emit(tenant_id=tenant.pk, event_type="outreach.rejected", outreach_ids=locked)
    result.done = [str(pk) for pk in locked]
    result.skipped = len(ids) - len(locked)
    return result


def outreach_expire_overdue(*, now: datetime | None = None) -> int:
    """Across tenants: pending review past its deadline becomes `expired`; snoozed items whose
    time has come return to the queue. Chunked, SKIP LOCKED so it never waits on an agent."""
    now = now or timezone.now()
    window = ExpressionWrapper(
        F("playbook__review_expiry_hours") * timedelta(hours=1), output_field=DurationField()
    )
    overdue = Q(review_deadline__lt=now) | Q(
        review_deadline=None, playbook__isnull=False, triggered_at__lt=now - window
    )
    expired = 0
    while True:
        with transaction.atomic():
            rows = list(
                Outreach.objects.unscoped()
                .filter(status=Outreach.Status.PENDING_REVIEW)
                .filter(overdue)
                .select_for_update(skip_locked=True, of=("self",))
                .values_list("pk", "tenant_id")[:EXPIRY_CHUNK]
            )
            if not rows:
                break
            ids = [pk for pk, _ in rows]
            Outreach.objects.unscoped().filter(pk__in=ids).update(
                status=Outreach.Status.EXPIRED, claimed_by=None, claimed_at=None
            )
            OutreachEvent.objects.bulk_create(
                [OutreachEvent(tenant_id=t, outreach_id=pk, kind="expired", created_at=now) for pk, t in rows]
            )
            expired += len(rows)
        if len(rows) < EXPIRY_CHUNK:
            break
    Outreach.objects.unscoped().filter(status=Outreach.Status.SNOOZED, snoozed_until__lte=now).update(
        status=Outreach.Status.PENDING_REVIEW, snoozed_until=None
    )
    return expired


@shared_task(name="campaigns.outreach_expire_overdue", ignore_result=True, expires=600)
def outreach_expire_overdue_task(**kwargs: Any) -> int:
    return outreach_expire_overdue()
