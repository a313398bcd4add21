"""Which changes owe which events: set-based, only to subscriptions that want them, once each,
and only when the change commits."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Membership
from campaigns.firing import playbooks_evaluate
from campaigns.incidents import incident_resolve
from campaigns.models import Outreach
from campaigns.queue import outreach_bulk, outreach_reject, outreach_send
from campaigns.webhook_events import outreach_events_emit
from proactive.scoring.registry import model_train
from tests.campaigns.helpers import T0, make_customers
from tests.campaigns.inbox_fixtures import mint
from tests.factories import MembershipFactory, OutreachFactory, PlaybookFactory, TenantFactory
from tests.proactive import scoring_world
from tests.webhooks.helpers import deliveries
from tests.webhooks.test_delivery import INCIDENT
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.signing import new_secret


def subscribe(tenant, events, enabled=True) -> WebhookEndpoint:
    # Created directly: these tests are about emission, not the URL checks (tests/webhooks/test_ssrf.py).
    return WebhookEndpoint.objects.create(
        tenant=tenant, url="https://hooks.example.com/h", events=events, secret=new_secret(), enabled=enabled
    )


def fire_everyone(tenant, n: int) -> dict:
    make_customers(tenant, n, prefix=f"n{n}-")
    PlaybookFactory(
        tenant=tenant,
        name=f"all {n}",
        trigger={"metric": "days_since_signup", "op": "gte", "value": 0},
        action={"channel": "in_app", "title": "Hi", "requires_review": False},
        holdout_percent=20,
    )
    return playbooks_evaluate(tenant=tenant, as_of=T0)


def test_a_firing_run_emits_one_event_per_outreach_in_constant_queries(tenant):
    subscribe(tenant, ["outreach.created"])
    small, large = tenant, TenantFactory(slug="large")
    subscribe(large, ["outreach.created"])
    with CaptureQueriesContext(connection) as few:
        fire_everyone(small, 5)
    with CaptureQueriesContext(connection) as many:
        fire_everyone(large, 60)
    assert len(many.captured_queries) == len(few.captured_queries)
    for t, n in ((small, 5), (large, 60)):
        rows = deliveries(t)
        assert len(rows) == n == Outreach.objects.for_tenant(t).count()
        assert {r.event_type for r in rows} == {"outreach.created"}
        statuses = {r.payload["data"]["status"] for r in rows}
        assert statuses <= {"sent", "held_out"} and "sent" in statuses
        assert {r.event_key for r in rows} == {
            f"outreach.created:{o.pk}" for o in Outreach.objects.for_tenant(t)
        }


def test_only_matching_enabled_subscriptions_of_the_tenant_get_events(tenant):
    wants_sent = subscribe(tenant, ["outreach.sent"])
    subscribe(tenant, ["model.promoted"])
    subscribe(tenant, ["outreach.sent"], enabled=False)
    other = TenantFactory(slug="other")
    subscribe(other, ["outreach.sent", "outreach.created"])
    result = fire_everyone(tenant, 10)
    rows = deliveries(tenant)
    assert len(rows) == result["sent"] > 0
    assert {r.endpoint_id for r in rows} == {wants_sent.pk}
    assert deliveries(other) == []
    # A second run as of the same time fires nothing new, so nothing is owed twice.
    playbooks_evaluate(tenant=tenant, as_of=T0)
    assert len(deliveries(tenant)) == len(rows)
    # Emitting the same events again (a retried job) adds nothing either.
    sent = Outreach.objects.for_tenant(tenant).filter(status="sent").values_list("pk", flat=True)
    assert outreach_events_emit(tenant_id=tenant.pk, event_type="outreach.sent", outreach_ids=sent) == 0


def test_a_tenant_without_subscriptions_pays_one_query_per_chunk(tenant):
    with CaptureQueriesContext(connection) as plain:
        fire_everyone(tenant, 5)
    assert not WebhookDelivery.objects.for_tenant(tenant).exists()
    emitted = [q["sql"] for q in plain.captured_queries if "webhooks_" in q["sql"]]
    assert len(emitted) == 2  # the created and the sent check of the one chunk
    assert all(q.startswith("SELECT") for q in emitted)


def test_a_change_that_rolls_back_emits_nothing(tenant):
    subscribe(tenant, ["outreach.sent"])
    outreach = OutreachFactory(tenant=tenant, customer__tenant=tenant, status="sent")
    with pytest.raises(RuntimeError), transaction.atomic():
        assert outreach_events_emit(
            tenant_id=tenant.pk, event_type="outreach.sent", outreach_ids=[outreach.pk]
        )
        raise RuntimeError("the change failed")
    assert deliveries(tenant) == []


def test_agent_actions_emit_sent_and_rejected(tenant):
    subscribe(tenant, ["outreach.sent", "outreach.rejected"])
    agent = MembershipFactory(tenant=tenant, role=Membership.Role.AGENT).user
    one, two, three, four = (
        OutreachFactory(tenant=tenant, customer__tenant=tenant, playbook__tenant=tenant) for _ in range(4)
    )
    outreach_send(tenant=tenant, outreach_id=one.pk, user=agent)
    outreach_reject(tenant=tenant, outreach_id=two.pk, user=agent, reason="Not relevant")
    outreach_bulk(tenant=tenant, user=agent, outreach_ids=[three.pk], action="send")
    outreach_bulk(tenant=tenant, user=agent, outreach_ids=[four.pk], action="reject", reason="Duplicate")
    got = {(r.event_type, r.payload["data"]["id"]) for r in deliveries(tenant)}
    assert got == {
        ("outreach.sent", str(one.pk)), ("outreach.rejected", str(two.pk)),
        ("outreach.sent", str(three.pk)), ("outreach.rejected", str(four.pk)),
    }  # fmt: skip
    rejected = next(r for r in deliveries(tenant) if r.payload["data"]["id"] == str(two.pk))
    assert rejected.payload["data"]["reject_reason"] == "Not relevant"
    assert rejected.payload["data"]["status"] == "rejected"


def test_inbox_engagement_emits_seen_clicked_dismissed_and_feedback_once(tenant):
    subscribe(tenant, ["outreach.seen", "outreach.clicked", "outreach.dismissed", "outreach.feedback"])
    message = OutreachFactory(
        tenant=tenant,
        customer__tenant=tenant,
        customer__external_id="u-1",
        status="sent",
        sent_at=timezone.now(),
    )
    client = Client(
        HTTP_X_PUBLISHABLE_KEY=tenant.publishable_key,
        HTTP_AUTHORIZATION=f"Bearer {mint(tenant.identity_secret, 'u-1')}",
    )
    url = f"/api/v1/inbox/{message.pk}/events"
    for kind in ("seen", "seen", "clicked", "helpful", "not_helpful", "dismissed"):
        assert client.post(url, {"type": kind}, content_type="application/json").status_code == 200
    rows = deliveries(tenant)
    assert sorted(r.event_type for r in rows) == [
        "outreach.clicked", "outreach.dismissed", "outreach.feedback", "outreach.seen",
    ]  # fmt: skip
    feedback = next(r for r in rows if r.event_type == "outreach.feedback")
    assert feedback.payload["data"]["feedback"] == "helpful"
    assert feedback.payload["data"]["customer"] == "u-1"


def test_incidents_emit_opened_and_resolved_through_the_api(tenant, api):
    subscribe(tenant, ["incident.opened", "incident.resolved"])
    make_customers(tenant, 2)
    created = api.post("/api/v1/incidents", INCIDENT, content_type="application/json").json()
    assert api.post(f"/api/v1/incidents/{created['id']}/resolve").status_code == 200
    rows = deliveries(tenant)
    assert [(r.event_type, r.payload["data"]["status"]) for r in rows] == [
        ("incident.opened", "open"), ("incident.resolved", "resolved"),
    ]  # fmt: skip
    assert rows[1].payload["data"]["resolved_at"] is not None
    assert all(r.payload["data"]["id"] == created["id"] for r in rows)


def test_resolving_twice_emits_once(tenant):
    from tests.factories import IncidentFactory

    subscribe(tenant, ["incident.resolved"])
    incident = IncidentFactory(tenant=tenant)
    assert incident_resolve(tenant=tenant, incident=incident)[0] is True
    assert incident_resolve(tenant=tenant, incident=incident)[0] is False
    assert len(deliveries(tenant)) == 1


def test_a_promoted_model_emits_model_promoted(tenant):
    subscribe(tenant, ["model.promoted"])
    as_of = scoring_world.build(tenant, customers=240, days=110, seed=3)
    model = model_train(tenant=tenant, as_of=as_of)
    assert model.status == "active"
    [row] = deliveries(tenant)
    assert row.event_type == "model.promoted" and row.event_key == f"model.promoted:{model.pk}"
    data = row.payload["data"]
    assert data["version"] == model.version and data["metrics"]["auc"] == model.metrics["auc"]
    assert data["notes"].startswith("Promoted")


def test_the_sweep_task_forgets_old_finished_deliveries_only(tenant, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from webhooks.models import WebhookAttempt
    from webhooks.tasks import webhooks_sweep_task

    endpoint = subscribe(tenant, ["outreach.sent"])
    old = timezone.now() - timedelta(days=31)
    for status in ("succeeded", "failed", "pending"):
        for age, created in (("old", old), ("new", timezone.now())):
            WebhookDelivery.objects.create(
                tenant=tenant, endpoint=endpoint, event_type="outreach.sent", event_key=f"{status}:{age}",
                payload={}, status=status, created_at=created, next_attempt_at=None,
            )  # fmt: skip
    for delivery in WebhookDelivery.objects.for_tenant(tenant):
        WebhookAttempt.objects.create(
            tenant=tenant, delivery=delivery, number=1, started_at=delivery.created_at
        )
    with django_capture_on_commit_callbacks(execute=True):
        webhooks_sweep_task()
    left = set(WebhookDelivery.objects.for_tenant(tenant).values_list("event_key", flat=True))
    assert left == {"succeeded:new", "failed:new", "pending:old", "pending:new"}
    assert WebhookAttempt.objects.for_tenant(tenant).count() == 4
