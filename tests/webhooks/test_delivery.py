"""Signed delivery to a real local receiver, verified with the `standardwebhooks` library."""

from __future__ import annotations

import json

import pytest
from standardwebhooks import Webhook

from campaigns.firing import playbooks_evaluate
from campaigns.incidents import incident_open, incident_resolve
from tests.campaigns.helpers import T0, make_customers
from tests.factories import PlaybookFactory
from tests.webhooks.helpers import create_webhook, deliveries, drive
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

INCIDENT = {
    "component": "sync",
    "title": "Sync is delayed",
    "affected": {"metric": "days_since_signup", "op": "gte", "value": 0},
    "notice": {"channel": "in_app", "title": "Sync is delayed", "body": "We are on it."},
}


def verify(secret: str, request) -> dict:
    """The library raises WebhookVerificationError on a bad signature, id or timestamp."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    return Webhook(secret).verify(request.body, headers)


def test_outreach_events_arrive_signed_and_verify(
    tenant, api, receiver, local_webhooks, django_capture_on_commit_callbacks
):
    hook = create_webhook(api, receiver.url, ["outreach.created", "outreach.sent"])
    assert hook["secret"].startswith("whsec_")
    customers = make_customers(tenant, 3)
    PlaybookFactory(
        tenant=tenant,
        trigger={"metric": "days_since_signup", "op": "gte", "value": 0},
        action={"channel": "in_app", "title": "Welcome aboard"},
        holdout_percent=0,
    )
    with django_capture_on_commit_callbacks(execute=True):
        result = playbooks_evaluate(tenant=tenant, as_of=T0)
    assert result["sent"] == 3
    assert len(receiver.requests) == 6
    bodies = [verify(hook["secret"], r) for r in receiver.requests]
    assert sorted(b["type"] for b in bodies) == ["outreach.created"] * 3 + ["outreach.sent"] * 3
    for body in bodies:
        assert set(body) == {"type", "timestamp", "data"}
        assert body["data"]["status"] == "sent" and body["data"]["title"] == "Welcome aboard"
    assert {b["data"]["customer"] for b in bodies} == {c.external_id for c in customers}
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(set(ids)) == 6 and all(i.startswith("msg_") for i in ids)
    assert receiver.requests[0].headers["webhook-signature"].startswith("v1,")
    # A tampered body or another secret does not verify.
    forged = receiver.requests[0]
    forged.body = forged.body.replace(b"Welcome", b"Goodbye")
    with pytest.raises(Exception, match="signature"):
        verify(hook["secret"], forged)
    assert {d.status for d in deliveries(tenant)} == {WebhookDelivery.Status.SUCCEEDED}
    assert all(d.last_status_code == 204 and d.last_latency_ms is not None for d in deliveries(tenant))


def test_a_failing_receiver_gets_retries_with_backoff_and_the_same_id(
    tenant, api, receiver, local_webhooks, django_capture_on_commit_callbacks
):
    receiver.fail_first = 3
    hook = create_webhook(api, receiver.url, ["incident.opened"])
    make_customers(tenant, 1)
    with django_capture_on_commit_callbacks(execute=True):
        incident, _ = incident_open(tenant=tenant, data=INCIDENT, as_of=T0)
    [delivery] = deliveries(tenant)
    assert delivery.status == WebhookDelivery.Status.PENDING and delivery.attempts == 1
    drive(
        django_capture_on_commit_callbacks,
        tenant,
        until=lambda: WebhookDelivery.objects.for_tenant(tenant).get().status == "succeeded",
    )
    delivery.refresh_from_db()
    assert delivery.attempts == 4 and delivery.last_status_code == 204
    assert len(receiver.requests) == 4
    assert {r.headers["webhook-id"] for r in receiver.requests} == {delivery.webhook_id}
    for request in receiver.requests:
        body = verify(hook["secret"], request)
        assert body["type"] == "incident.opened" and body["data"]["id"] == str(incident.pk)
    attempts = list(WebhookAttempt.objects.for_tenant(tenant).filter(delivery=delivery))
    assert [(a.number, a.succeeded, a.status_code) for a in attempts] == [
        (1, False, 500), (2, False, 500), (3, False, 500), (4, True, 204),
    ]  # fmt: skip
    assert [a.error for a in attempts[:3]] == ["HTTP 500"] * 3
    # Exponential backoff: 0.2 s, 0.4 s, 0.8 s (+ up to 10% jitter) between the attempts.
    gaps = [b.at - a.at for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    for n, gap in enumerate(gaps, start=1):
        expected = 0.2 * 2 ** (n - 1)
        assert expected <= gap < expected * 1.1 + 0.4, gaps


def test_a_timeout_is_a_failed_attempt_that_is_retried(
    tenant, api, receiver, local_webhooks, django_capture_on_commit_callbacks
):
    local_webhooks.WEBHOOKS_TIMEOUT_SECONDS = 0.3
    receiver.delay = 1.0
    create_webhook(api, receiver.url, ["incident.opened"])
    with django_capture_on_commit_callbacks(execute=True):
        incident_open(tenant=tenant, data=INCIDENT, as_of=T0)
    [delivery] = deliveries(tenant)
    assert delivery.status == WebhookDelivery.Status.PENDING and delivery.next_attempt_at is not None
    assert delivery.last_error.startswith("timed out") and delivery.last_status_code is None
    attempt = WebhookAttempt.objects.for_tenant(tenant).get()
    assert attempt.succeeded is False and 250 <= attempt.latency_ms < 1000


def test_a_long_run_of_failures_disables_the_endpoint_with_the_reason(
    tenant, api, admin_client_for, receiver, local_webhooks, django_capture_on_commit_callbacks
):
    local_webhooks.WEBHOOKS_DISABLE_AFTER_FAILURES = 4
    local_webhooks.WEBHOOKS_DISABLE_AFTER_HOURS = 0
    receiver.fail_first = 1000
    receiver.fail_status = 503
    hook = create_webhook(api, receiver.url, ["incident.opened", "incident.resolved"])
    with django_capture_on_commit_callbacks(execute=True):
        incident, _ = incident_open(tenant=tenant, data=INCIDENT, as_of=T0)
        incident_resolve(tenant=tenant, incident=incident, as_of=T0)
    endpoint = WebhookEndpoint.objects.for_tenant(tenant).get()
    drive(django_capture_on_commit_callbacks, tenant, until=lambda: not endpoint.__class__.objects.for_tenant(
        tenant).get().enabled)  # fmt: skip
    endpoint.refresh_from_db()
    assert endpoint.failure_streak == 4
    assert endpoint.disabled_reason.startswith("Disabled automatically: all 4 attempts since")
    assert "HTTP 503" in endpoint.disabled_reason
    assert {d.status for d in deliveries(tenant)} == {WebhookDelivery.Status.FAILED}
    count = len(receiver.requests)
    with django_capture_on_commit_callbacks(execute=True):
        incident_open(tenant=tenant, data={**INCIDENT, "title": "Another"}, as_of=T0)
    assert len(receiver.requests) == count  # nothing more is sent to a disabled endpoint
    listed = api.get("/api/v1/webhooks").json()["results"]
    assert [(h["id"], h["enabled"]) for h in listed] == [(hook["id"], False)]
    page = admin_client_for.get(f"/t/{tenant.slug}/webhooks/{hook['id']}/")
    assert "Disabled automatically: all 4 attempts" in page.content.decode()
    assert "HTTP 503" in page.content.decode()


def test_the_body_is_the_json_the_signature_covers(tenant, api, receiver, local_webhooks,
                                                  django_capture_on_commit_callbacks):  # fmt: skip
    create_webhook(api, receiver.url, ["incident.opened"])
    with django_capture_on_commit_callbacks(execute=True):
        incident_open(tenant=tenant, data=INCIDENT, as_of=T0)
    [request] = receiver.requests
    assert request.headers["Content-Type"] == "application/json"
    body = json.loads(request.body)
    assert body["type"] == "incident.opened"
    assert body["data"]["status"] == "open" and body["data"]["component"] == "sync"
    assert body["timestamp"].endswith("+00:00")
