"""`GET|POST /api/v1/webhooks`, `DELETE /api/v1/webhooks/{id}` (contract v1.1)."""

from __future__ import annotations

import pytest

from accounts.models import AuditLog
from accounts.services import api_key_create
from tests.factories import TenantFactory
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


@pytest.fixture
def local(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True


def test_it_creates_lists_and_deletes_with_the_secret_shown_once(api, tenant, local):
    created = api.post(
        "/api/v1/webhooks",
        {"url": "http://127.0.0.1:9/hook", "events": ["outreach.sent", "model.promoted", "outreach.sent"]},
        content_type="application/json",
    )
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"id", "url", "events", "enabled", "created_at", "secret"}
    assert body["events"] == ["outreach.sent", "model.promoted"] and body["enabled"] is True
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 40
    listed = api.get("/api/v1/webhooks").json()
    assert listed == {"results": [{k: v for k, v in body.items() if k != "secret"}], "next": None}
    assert body["secret"] not in api.get("/api/v1/webhooks").content.decode()
    endpoint = WebhookEndpoint.objects.for_tenant(tenant).get()
    delivery = WebhookDelivery.objects.create(
        tenant=tenant, endpoint=endpoint, event_type="outreach.sent", event_key="k", payload={}
    )
    WebhookAttempt.objects.create(tenant=tenant, delivery=delivery, number=1, started_at=endpoint.created_at)
    assert api.delete(f"/api/v1/webhooks/{body['id']}").status_code == 204
    assert api.get("/api/v1/webhooks").json() == {"results": [], "next": None}
    assert not WebhookDelivery.objects.for_tenant(tenant).exists()
    assert not WebhookAttempt.objects.for_tenant(tenant).exists()
    assert api.delete(f"/api/v1/webhooks/{body['id']}").status_code == 404
    actions = set(AuditLog.objects.for_tenant(tenant).values_list("action", flat=True))
    assert {"webhook.create", "webhook.delete"} <= actions


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"url": "http://127.0.0.1:9/h", "events": []}, "events"),
        ({"url": "http://127.0.0.1:9/h", "events": ["outreach.exploded"]}, "events"),
        ({"url": "http://127.0.0.1:9/h"}, "events"),
        ({"url": "ftp://127.0.0.1/h", "events": ["outreach.sent"]}, "url"),
        ({"url": "not a url", "events": ["outreach.sent"]}, "url"),
        ({"url": "http://user:pw@127.0.0.1:9/h", "events": ["outreach.sent"]}, "url"),
        ({"url": "http://no-such-host.invalid/h", "events": ["outreach.sent"]}, "url"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, local, payload, field):
    response = api.post("/api/v1/webhooks", payload, content_type="application/json")
    assert response.status_code == 400
    assert field in response.json()


def test_other_tenants_webhooks_are_invisible_and_untouchable(api, tenant, local):
    other = TenantFactory(slug="other")
    other_api_key = api_key_create(tenant=other).secret
    from django.test import Client

    theirs = Client(HTTP_AUTHORIZATION=f"Bearer {other_api_key}").post(
        "/api/v1/webhooks", {"url": "http://127.0.0.1:9/x", "events": ["outreach.sent"]},
        content_type="application/json",
    ).json()  # fmt: skip
    assert api.get("/api/v1/webhooks").json()["results"] == []
    assert api.delete(f"/api/v1/webhooks/{theirs['id']}").status_code == 404
    assert WebhookEndpoint.objects.for_tenant(other).count() == 1


def test_the_schema_describes_the_endpoints(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]
    assert set(paths["/api/v1/webhooks"]) >= {"get", "post"}
    assert set(paths["/api/v1/webhooks/{webhook_id}"]) >= {"delete"}
    created = paths["/api/v1/webhooks"]["post"]["responses"]["201"]["content"]["application/json"]["schema"]
    name = created["$ref"].rsplit("/", 1)[1]
    props = schema["components"]["schemas"][name]["properties"]
    assert set(props) == {"id", "url", "events", "enabled", "created_at", "secret"}
    listed = paths["/api/v1/webhooks"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    list_name = listed["$ref"].rsplit("/", 1)[1]
    assert set(schema["components"]["schemas"][list_name]["properties"]) == {"results", "next"}
    assert "secret" not in str(schema["components"]["schemas"][list_name])
