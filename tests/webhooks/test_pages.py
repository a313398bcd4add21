"""The tenant admins' webhook pages."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.webhooks.test_emission import subscribe
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


@pytest.fixture
def local(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True


def test_an_admin_creates_a_webhook_and_sees_its_secret_once(admin_client_for, tenant, local):
    page = admin_client_for.get(f"/t/{tenant.slug}/webhooks/")
    assert page.status_code == 200 and "No webhooks yet" in page.content.decode()
    response = admin_client_for.post(
        f"/t/{tenant.slug}/webhooks/",
        {"url": "http://127.0.0.1:9/hook", "events": ["outreach.sent", "incident.opened"]},
        follow=True,
    )
    endpoint = WebhookEndpoint.objects.for_tenant(tenant).get()
    assert response.redirect_chain[-1][0] == f"/t/{tenant.slug}/webhooks/{endpoint.pk}/"
    html = response.content.decode()
    assert endpoint.secret in html and "shown only this once" in html
    again = admin_client_for.get(f"/t/{tenant.slug}/webhooks/{endpoint.pk}/").content.decode()
    assert endpoint.secret not in again
    listing = admin_client_for.get(f"/t/{tenant.slug}/webhooks/").content.decode()
    assert "http://127.0.0.1:9/hook" in listing and endpoint.secret not in listing
    assert f'<a href="/t/{tenant.slug}/webhooks/" aria-current="page">Webhooks</a>' in listing
    assert 'aria-current="page">Webhooks</a>' in again
    assert endpoint.events == ["outreach.sent", "incident.opened"]


def test_the_delivery_log_shows_status_attempts_code_and_latency(admin_client_for, tenant):
    endpoint = subscribe(tenant, ["outreach.sent"])
    now = timezone.now()
    ok = WebhookDelivery.objects.create(
        tenant=tenant, endpoint=endpoint, event_type="outreach.sent", event_key="a", payload={},
        status="succeeded", attempts=2, last_status_code=204, last_latency_ms=87,
    )  # fmt: skip
    attempt = {"tenant": tenant, "delivery": ok, "started_at": now, "finished_at": now}
    WebhookAttempt.objects.create(**attempt, number=1, succeeded=False, status_code=502, error="HTTP 502")
    WebhookAttempt.objects.create(**attempt, number=2, succeeded=True, status_code=204, latency_ms=87)
    for i in range(5):
        d = WebhookDelivery.objects.create(tenant=tenant, endpoint=endpoint, event_type="outreach.sent",
                                           event_key=f"f{i}", payload={}, status="failed", attempts=1,
                                           last_error="timed out after 10.0 s")  # fmt: skip
        WebhookAttempt.objects.create(tenant=tenant, delivery=d, number=1, started_at=now, finished_at=now,
                                      succeeded=False, error="timed out after 10.0 s")  # fmt: skip
    url = f"/t/{tenant.slug}/webhooks/{endpoint.pk}/"
    with CaptureQueriesContext(connection) as queries:
        html = admin_client_for.get(url).content.decode()
    assert len(queries.captured_queries) <= 9  # session, user, membership, endpoint, log, attempts...
    text = re.sub(r"\s+", " ", html)
    assert ok.webhook_id in text and "87 ms" in text and "HTTP 502" in text
    assert text.count("timed out after 10.0 s") == 5
    failed_only = admin_client_for.get(url + "?status=failed").content.decode()
    assert ok.webhook_id not in failed_only and failed_only.count("timed out after 10.0 s") == 5
    listing = re.sub(r"\s+", " ", admin_client_for.get(f"/t/{tenant.slug}/webhooks/").content.decode())
    assert (
        '<td class="num" data-label="Delivered">1</td><td class="num" data-label="Waiting">0</td>'
        '<td class="num" data-label="Failed">5</td>'
    ) in listing


def test_disable_enable_and_delete(admin_client_for, tenant):
    endpoint = subscribe(tenant, ["outreach.sent"])
    base = f"/t/{tenant.slug}/webhooks/{endpoint.pk}"
    admin_client_for.post(f"{base}/toggle/", {"enabled": "0"})
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.disabled_reason == "Disabled by hand."
    assert "Disabled by hand." in admin_client_for.get(f"{base}/").content.decode()
    admin_client_for.post(f"{base}/toggle/", {"enabled": "1"})
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.disabled_reason == "" and endpoint.failure_streak == 0
    response = admin_client_for.post(f"{base}/delete/")
    assert response.status_code == 302 and not WebhookEndpoint.objects.for_tenant(tenant).exists()


def test_agents_and_viewers_cannot_see_or_change_webhooks(agent_client, viewer_client, tenant):
    endpoint = subscribe(tenant, ["outreach.sent"])
    for client in (agent_client, viewer_client):
        assert client.get(f"/t/{tenant.slug}/webhooks/").status_code == 403
        assert client.get(f"/t/{tenant.slug}/webhooks/{endpoint.pk}/").status_code == 403
        assert client.post(f"/t/{tenant.slug}/webhooks/{endpoint.pk}/delete/").status_code == 403
        assert "/webhooks/" not in client.get(f"/t/{tenant.slug}/").content.decode()
    assert WebhookEndpoint.objects.for_tenant(tenant).exists()
