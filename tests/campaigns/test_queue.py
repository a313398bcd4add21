from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from accounts.models import AuditLog, Membership
from campaigns import queue
from campaigns.models import Outreach, OutreachEvent
from tests.campaigns.inbox_fixtures import private_cache  # noqa: F401
from tests.factories import CustomerFactory, MembershipFactory, OutreachFactory, PlaybookFactory


@pytest.fixture
def agents(tenant):
    return [MembershipFactory(tenant=tenant, role=Membership.Role.AGENT).user for _ in range(2)]


def pending(tenant, **kw):
    return OutreachFactory(tenant=tenant, customer=CustomerFactory(tenant=tenant), **kw)


def test_claim_next_takes_the_most_urgent_then_riskiest(tenant, agents):
    pending(tenant, priority=1, risk_score=0.9)
    urgent_low = pending(tenant, priority=3, risk_score=0.1)
    urgent_high = pending(tenant, priority=3, risk_score=0.7)
    first = queue.outreach_claim_next(tenant=tenant, user=agents[0])
    second = queue.outreach_claim_next(tenant=tenant, user=agents[1])
    assert (first.pk, second.pk) == (urgent_high.pk, urgent_low.pk)
    assert queue.outreach_claim_next(tenant=tenant, user=agents[0]).pk == urgent_high.pk  # own claim first


def test_a_second_agent_cannot_claim_or_act_on_a_held_item(tenant, agents):
    item = pending(tenant)
    queue.outreach_claim(tenant=tenant, outreach_id=item.pk, user=agents[0])
    with pytest.raises(queue.ClaimConflict):
        queue.outreach_claim(tenant=tenant, outreach_id=item.pk, user=agents[1])
    with pytest.raises(queue.ClaimConflict):
        queue.outreach_send(tenant=tenant, outreach_id=item.pk, user=agents[1])
    assert queue.outreach_claim_next(tenant=tenant, user=agents[1]) is None


def test_an_abandoned_claim_expires(tenant, agents):
    item = pending(tenant)
    queue.outreach_claim(tenant=tenant, outreach_id=item.pk, user=agents[0])
    Outreach.objects.for_tenant(tenant).filter(pk=item.pk).update(
        claimed_at=timezone.now() - queue.CLAIM_TTL - timedelta(seconds=1)
    )
    assert queue.outreach_claim_next(tenant=tenant, user=agents[1]).pk == item.pk


def test_edit_send_reject_snooze_are_recorded(tenant, agents):
    a, b, c = pending(tenant), pending(tenant), pending(tenant)
    user = agents[0]
    queue.outreach_edit(tenant=tenant, outreach_id=a.pk, user=user, title="New title", body="New **body**")
    sent = queue.outreach_send(tenant=tenant, outreach_id=a.pk, user=user)
    assert (sent.status, sent.title, sent.reviewed_by, sent.claimed_by) == ("sent", "New title", user, None)
    assert sent.sent_at is not None
    with pytest.raises(queue.QueueError):
        queue.outreach_reject(tenant=tenant, outreach_id=b.pk, user=user, reason="  ")
    rejected = queue.outreach_reject(tenant=tenant, outreach_id=b.pk, user=user, reason="already in a ticket")
    assert (rejected.status, rejected.reject_reason) == ("rejected", "already in a ticket")
    until = timezone.now() + timedelta(days=2)
    snoozed = queue.outreach_snooze(tenant=tenant, outreach_id=c.pk, user=user, until=until)
    assert (snoozed.status, snoozed.snoozed_until) == ("snoozed", until)
    with pytest.raises(queue.QueueError):
        queue.outreach_send(tenant=tenant, outreach_id=a.pk, user=user)  # already sent
    events = OutreachEvent.objects.for_tenant(tenant).filter(actor=user).values_list("kind", flat=True)
    assert sorted(events) == ["edited", "rejected", "sent", "snoozed"]
    actions = AuditLog.objects.for_tenant(tenant).filter(actor=user).values_list("action", flat=True)
    assert sorted(actions) == ["outreach.edited", "outreach.rejected", "outreach.sent", "outreach.snoozed"]


def test_bulk_send_skips_items_held_by_others(tenant, agents):
    mine, free, held = pending(tenant), pending(tenant), pending(tenant)
    queue.outreach_claim(tenant=tenant, outreach_id=held.pk, user=agents[1])
    queue.outreach_claim(tenant=tenant, outreach_id=mine.pk, user=agents[0])
    result = queue.outreach_bulk(
        tenant=tenant, user=agents[0], outreach_ids=[mine.pk, free.pk, held.pk], action="send"
    )
    assert sorted(result.done) == sorted([str(mine.pk), str(free.pk)]) and result.skipped == 1
    statuses = dict(Outreach.objects.for_tenant(tenant).values_list("pk", "status"))
    assert (statuses[mine.pk], statuses[free.pk], statuses[held.pk]) == ("sent", "sent", "pending_review")
    rejected = queue.outreach_bulk(
        tenant=tenant, user=agents[1], outreach_ids=[held.pk], action="reject", reason="duplicate"
    )
    assert rejected.done == [str(held.pk)]
    assert OutreachEvent.objects.for_tenant(tenant).filter(kind="sent", data__bulk=True).count() == 2


def test_sending_an_email_outreach_mails_it_once(tenant, agents, django_capture_on_commit_callbacks):
    item = pending(tenant, channel="email", title="Hi {{ customer.first_name }}", body="Body")
    with django_capture_on_commit_callbacks(execute=True):
        queue.outreach_send(tenant=tenant, outreach_id=item.pk, user=agents[0])
    with pytest.raises(queue.QueueError), django_capture_on_commit_callbacks(execute=True):
        queue.outreach_send(tenant=tenant, outreach_id=item.pk, user=agents[0])
    assert len(mail.outbox) == 1


def test_overdue_review_expires_and_snoozed_items_come_back(tenant, agents):
    now = timezone.now()
    playbook = PlaybookFactory(tenant=tenant, review_expiry_hours=24)
    overdue = pending(tenant, review_deadline=now - timedelta(minutes=1))
    implicit = pending(tenant, playbook=playbook, triggered_at=now - timedelta(hours=25))
    fresh = pending(tenant, playbook=playbook, triggered_at=now - timedelta(hours=1))
    woken = pending(tenant, status="snoozed", snoozed_until=now - timedelta(minutes=1))
    assert queue.outreach_expire_overdue(now=now) == 2
    statuses = dict(Outreach.objects.for_tenant(tenant).values_list("pk", "status"))
    assert statuses[overdue.pk] == statuses[implicit.pk] == "expired"
    assert statuses[fresh.pk] == statuses[woken.pk] == "pending_review"
    assert OutreachEvent.objects.for_tenant(tenant).filter(kind="expired").count() == 2
    assert queue.outreach_expire_overdue(now=now) == 0


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_agents_never_double_claim():
    from tests.factories import TenantFactory

    tenant = TenantFactory()
    users = [MembershipFactory(tenant=tenant, role="agent").user for _ in range(20)]
    customer = CustomerFactory(tenant=tenant)
    for _ in range(12):
        OutreachFactory(tenant=tenant, customer=customer)
    barrier = threading.Barrier(20)
    claimed: dict[int, object] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait()
            got = queue.outreach_claim_next(tenant=tenant, user=users[i])
            claimed[i] = got.pk if got else None
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    got = [pk for pk in claimed.values() if pk is not None]
    assert len(got) == 12 and len(set(got)) == 12  # every item claimed exactly once
    holders = Outreach.objects.for_tenant(tenant).values_list("claimed_by", flat=True)
    assert len(set(holders)) == 12
