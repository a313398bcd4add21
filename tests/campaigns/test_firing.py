from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import CharField, Value
from django.db.models.functions import Cast, Concat

from campaigns.firing import playbooks_evaluate
from campaigns.models import Outreach
from proactive.models import Customer
from tests.campaigns.helpers import T0, add_signals, make_customers
from tests.factories import PlaybookFactory, TenantFactory

ERRORS = {"all": [{"metric": "count(error.*, 3)", "op": "gte", "value": 2}]}


@pytest.fixture
def world(tenant):
    customers = make_customers(tenant, 40)
    add_signals(tenant, customers[:30], "error.sync_failed", T0 - timedelta(hours=5), per_customer=2)
    return customers


def outreach(tenant, **filters):
    return Outreach.objects.for_tenant(tenant).filter(**filters)


def test_it_fires_once_per_cooldown(tenant, world):
    playbook = PlaybookFactory(tenant=tenant, trigger=ERRORS, holdout_percent=0, cooldown_days=14)
    first = playbooks_evaluate(tenant=tenant, as_of=T0)
    assert first["fired"] == 30
    assert first["sent"] == 30
    again = playbooks_evaluate(tenant=tenant, as_of=T0 + timedelta(hours=1))
    assert again["fired"] == 0
    assert outreach(tenant, playbook=playbook).count() == 30
    row = outreach(tenant, playbook=playbook).first()
    assert row.triggered_at == T0
    assert row.sent_at == T0
    assert row.context == {"count(error.*, 3)": 2.0}
    assert row.title == "Need a hand?"
    assert "{{ customer.name }}" in row.body


def test_a_held_out_share_is_recorded_stable_across_runs(tenant):
    customers = make_customers(tenant, 2000)
    playbook = PlaybookFactory(
        tenant=tenant, trigger={"metric": "days_since_signup", "op": "gte", "value": 1}, holdout_percent=20
    )
    result = playbooks_evaluate(tenant=tenant, as_of=T0)
    assert result["fired"] == 2000
    held = set(outreach(tenant, status="held_out", holdout=True).values_list("customer_id", flat=True))
    assert 0.17 < len(held) / len(customers) < 0.23
    assert result["held_out"] == len(held)
    row = outreach(tenant, status="held_out").first()
    assert (row.triggered_at, row.sent_at) == (T0, None)
    # The next cooldown window draws the same customers into the holdout.
    Outreach.objects.for_tenant(tenant).update(
        triggered_at=T0 - timedelta(days=30), dedupe_key=Concat(Value("old:"), Cast("id", CharField()))
    )
    playbooks_evaluate(tenant=tenant, as_of=T0 + timedelta(days=1))
    again = set(
        outreach(tenant, status="held_out", triggered_at=T0 + timedelta(days=1)).values_list(
            "customer_id", flat=True
        )
    )
    assert again == held
    assert playbook.pk == row.playbook_id


def test_review_playbooks_wait_for_review_with_a_deadline(tenant, world):
    PlaybookFactory(
        tenant=tenant,
        trigger=ERRORS,
        holdout_percent=0,
        review_expiry_hours=48,
        action={"title": "Let us help", "requires_review": True, "priority": "high"},
    )
    result = playbooks_evaluate(tenant=tenant, as_of=T0)
    assert result["pending_review"] == 30
    row = outreach(tenant).first()
    assert (row.status, row.review_deadline, row.sent_at, row.priority) == (
        "pending_review",
        T0 + timedelta(hours=48),
        None,
        2,
    )


def test_the_budget_goes_to_the_highest_priority_and_suppresses_the_rest(tenant, world):
    tenant.budget_max_messages, tenant.budget_per_days = 1, 7
    tenant.save(update_fields=["budget_max_messages", "budget_per_days"])
    low = PlaybookFactory(
        tenant=tenant, trigger=ERRORS, holdout_percent=0, action={"title": "low", "priority": "low"}
    )
    high = PlaybookFactory(
        tenant=tenant, trigger=ERRORS, holdout_percent=0, action={"title": "high", "priority": "high"}
    )
    result = playbooks_evaluate(tenant=tenant, as_of=T0)
    assert result["playbooks"][str(high.pk)] == {"sent": 30, "fired": 30}
    assert result["playbooks"][str(low.pk)] == {"suppressed": 30, "fired": 30}
    row = outreach(tenant, playbook=low).first()
    assert row.suppressed_reason == "contact budget: 1 per 7 days"
    # A third playbook the next day finds the budget used up; a week later it is free again.
    later = PlaybookFactory(
        tenant=tenant, trigger=ERRORS, holdout_percent=0, action={"title": "later", "priority": "urgent"}
    )
    assert playbooks_evaluate(tenant=tenant, as_of=T0 + timedelta(days=1))["playbooks"][str(later.pk)] == {
        "suppressed": 30,
        "fired": 30,
    }


def test_held_out_customers_use_the_budget_like_treated_ones(tenant, world):
    tenant.budget_max_messages = 1
    tenant.save(update_fields=["budget_max_messages"])
    first = PlaybookFactory(
        tenant=tenant, trigger=ERRORS, holdout_percent=50, action={"title": "a", "priority": "high"}
    )
    second = PlaybookFactory(
        tenant=tenant, trigger=ERRORS, holdout_percent=0, action={"title": "b", "priority": "low"}
    )
    result = playbooks_evaluate(tenant=tenant, as_of=T0)
    counts = result["playbooks"][str(first.pk)]
    assert counts["held_out"] > 0
    assert counts["sent"] + counts["held_out"] == 30
    # Every customer of `first`, held out or not, used the single slot: `second` is suppressed for all.
    assert result["playbooks"][str(second.pk)] == {"suppressed": 30, "fired": 30}


def test_concurrent_runs_create_one_outreach_per_cooldown(transactional_db):
    tenant = TenantFactory()
    customers = make_customers(tenant, 300)
    add_signals(tenant, customers, "error.sync_failed", T0 - timedelta(hours=2), per_customer=2)
    PlaybookFactory(tenant=tenant, trigger=ERRORS, holdout_percent=10)
    PlaybookFactory(
        tenant=tenant, trigger=ERRORS, holdout_percent=10, action={"title": "x", "priority": "high"}
    )
    results, errors = [], []
    barrier = threading.Barrier(4)

    def run(offset):
        try:
            barrier.wait()
            results.append(playbooks_evaluate(tenant=tenant, as_of=T0 + timedelta(minutes=offset)))
        except Exception as exc:  # noqa: BLE001 (the assertion below reports it)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(r["fired"] for r in results) == 600
    assert outreach(tenant).count() == 600
    per_customer = outreach(tenant).exclude(status="suppressed").values("customer_id").distinct().count()
    assert per_customer == 300
    assert outreach(tenant).exclude(status="suppressed").count() == 600  # budget 2 per 7 days: both fit


def test_sent_email_outreach_is_delivered_after_commit(
    tenant, world, django_capture_on_commit_callbacks, mailoutbox
):
    Customer.objects.for_tenant(tenant).update(email=Concat("external_id", Value("@customer.test")))
    PlaybookFactory(
        tenant=tenant,
        trigger=ERRORS,
        holdout_percent=0,
        action={"channel": "email", "title": "Sync trouble?", "body": "Hi {{ customer.name }}"},
    )
    with django_capture_on_commit_callbacks(execute=True):
        result = playbooks_evaluate(tenant=tenant, as_of=T0)
    assert result["sent"] == 30
    assert len(mailoutbox) == 30
    assert outreach(tenant, email_sent_at__isnull=False).count() == 30
