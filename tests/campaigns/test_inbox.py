from __future__ import annotations

import base64
import json

import pytest
from django.test import Client
from django.utils import timezone

from campaigns.delivery import outreach_deliver
from campaigns.inbox import views as inbox_views
from campaigns.models import Outreach, OutreachEvent
from tests.campaigns.inbox_fixtures import executable_parts, mint, private_cache  # noqa: F401
from tests.factories import CustomerFactory, OutreachFactory, TenantFactory

ORIGIN = "https://app.acme.test"


@pytest.fixture
def world(tenant):
    tenant.allowed_origins = [ORIGIN]
    tenant.save(update_fields=["allowed_origins"])
    customer = CustomerFactory(tenant=tenant, external_id="u-1", name="Ada Lovelace")
    message = OutreachFactory(
        tenant=tenant,
        customer=customer,
        status=Outreach.Status.SENT,
        sent_at=timezone.now(),
        title="Need a hand, {{ customer.first_name }}?",
        body="Hi **{{ customer.name }}**",
        cta_label="Open the guide",
        cta_url="https://example.com/guide",
    )
    return tenant, customer, message


def headers(tenant, token, origin=ORIGIN):
    h = {"HTTP_X_PUBLISHABLE_KEY": tenant.publishable_key, "HTTP_AUTHORIZATION": f"Bearer {token}"}
    if origin:
        h["HTTP_ORIGIN"] = origin
    return h


def get_inbox(tenant, token, **kw):
    return Client().get("/api/v1/inbox", **headers(tenant, token, **kw))


def test_it_lists_sent_in_app_messages_rendered(world):
    tenant, customer, message = world
    response = get_inbox(tenant, mint(tenant.identity_secret, "u-1"))
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert "Set-Cookie" not in response and not response.cookies
    assert response.json() == {
        "messages": [
            {
                "id": str(message.pk),
                "title": "Need a hand, Ada?",
                "body_html": "<p>Hi <strong>Ada Lovelace</strong></p>\n",
                "cta_label": "Open the guide",
                "cta_url": "https://example.com/guide",
                "sent_at": message.sent_at.isoformat(),
            }
        ]
    }


def test_it_leaves_out_pending_dismissed_expired_email_and_other_customers(world):
    tenant, customer, _ = world
    now = timezone.now()
    OutreachFactory(tenant=tenant, customer=customer, status=Outreach.Status.PENDING_REVIEW)
    OutreachFactory(tenant=tenant, customer=customer, status="sent", sent_at=now, dismissed_at=now)
    OutreachFactory(tenant=tenant, customer=customer, status="sent", sent_at=now, expires_at=now)
    OutreachFactory(tenant=tenant, customer=customer, status="sent", sent_at=now, channel="email")
    OutreachFactory(tenant=tenant, status="sent", sent_at=now)
    response = get_inbox(tenant, mint(tenant.identity_secret, "u-1"))
    assert len(response.json()["messages"]) == 1


def _unsigned(sub: str) -> str:
    def b64(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64({'sub': sub, 'exp': 9999999999})}."


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda t, o: mint("is_forged-secret-of-the-right-length-000000", "u-1"), id="forged"),
        pytest.param(lambda t, o: mint(t.identity_secret, "u-1", exp_in=-3600), id="expired"),
        pytest.param(lambda t, o: _unsigned("u-1"), id="alg-none"),
        pytest.param(lambda t, o: mint(o.identity_secret, "u-1"), id="other-tenant"),
        pytest.param(lambda t, o: mint(t.identity_secret, "u-1", exp_in=3 * 86400), id="exp-too-far"),
        pytest.param(lambda t, o: mint(t.identity_secret, "u-1", alg="HS512"), id="other-alg"),
        pytest.param(lambda t, o: "", id="missing"),
        pytest.param(lambda t, o: "not.a.jwt", id="garbage"),
    ],
)
def test_bad_tokens_are_refused(world, make_token):
    tenant, _, _ = world
    other = TenantFactory()
    token = make_token(tenant, other)
    response = get_inbox(tenant, token)
    assert response.status_code == 401
    assert b"messages" not in response.content


def test_a_token_without_exp_is_refused(world):
    tenant, _, _ = world
    import jwt

    token = jwt.encode({"sub": "u-1"}, tenant.identity_secret, algorithm="HS256")
    assert get_inbox(tenant, token).status_code == 401


def test_another_tenants_publishable_key_is_refused(world):
    tenant, _, _ = world
    other = TenantFactory(allowed_origins=[ORIGIN])
    token = mint(tenant.identity_secret, "u-1")
    response = Client().get(
        "/api/v1/inbox", HTTP_X_PUBLISHABLE_KEY=other.publishable_key, HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 401
    assert Client().get("/api/v1/inbox", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


def test_the_server_key_and_a_session_do_not_authenticate(world, api, admin_client_for):
    assert api.get("/api/v1/inbox").status_code == 401
    assert admin_client_for.get("/api/v1/inbox").status_code == 401


def test_cors_only_for_allowed_origins(world):
    tenant, _, _ = world
    token = mint(tenant.identity_secret, "u-1")
    assert get_inbox(tenant, token, origin="https://evil.test").status_code == 403
    assert get_inbox(tenant, token, origin=None).status_code == 200  # server-side callers send no Origin
    ok = Client().options("/api/v1/inbox", HTTP_ORIGIN=ORIGIN, HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET")
    assert ok.status_code == 204
    assert ok["Access-Control-Allow-Origin"] == ORIGIN
    assert "X-Publishable-Key" in ok["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in ok
    bad = Client().options("/api/v1/inbox", HTTP_ORIGIN="https://evil.test")
    assert "Access-Control-Allow-Origin" not in bad


def test_events_are_recorded_once_each(world):
    tenant, _, message = world
    token = mint(tenant.identity_secret, "u-1")
    client = Client(**headers(tenant, token))
    url = f"/api/v1/inbox/{message.pk}/events"
    for kind in ("seen", "clicked", "helpful"):
        first = client.post(url, {"type": kind}, content_type="application/json")
        again = client.post(url, {"type": kind}, content_type="application/json")
        assert (first.status_code, first.json()["recorded"]) == (200, True)
        assert (again.status_code, again.json()["recorded"]) == (200, False)
    # a second, different opinion does not overwrite the first
    assert (
        client.post(url, {"type": "not_helpful"}, content_type="application/json").json()["recorded"] is False
    )
    message.refresh_from_db()
    assert message.seen_at and message.clicked_at and message.feedback == "helpful"
    kinds = sorted(
        OutreachEvent.objects.for_tenant(tenant).filter(outreach=message).values_list("kind", flat=True)
    )
    assert kinds == ["clicked", "helpful", "seen"]


def test_dismissing_removes_the_message_at_once(world):
    tenant, _, message = world
    token = mint(tenant.identity_secret, "u-1")
    assert len(get_inbox(tenant, token).json()["messages"]) == 1  # now cached
    client = Client(**headers(tenant, token))
    client.post(f"/api/v1/inbox/{message.pk}/events", {"type": "dismissed"}, content_type="application/json")
    assert get_inbox(tenant, token).json() == {"messages": []}


def test_bad_events_and_other_customers_messages(world):
    tenant, _, message = world
    CustomerFactory(tenant=tenant, external_id="u-2")
    other_token = mint(tenant.identity_secret, "u-2")
    client = Client(**headers(tenant, other_token))
    url = f"/api/v1/inbox/{message.pk}/events"
    assert client.post(url, {"type": "seen"}, content_type="application/json").status_code == 404
    own = Client(**headers(tenant, mint(tenant.identity_secret, "u-1")))
    assert own.post(url, {"type": "deleted"}, content_type="application/json").status_code == 400
    assert own.post(url, "{nope", content_type="application/json").status_code == 400
    assert own.get(url).status_code == 405


def test_a_poll_with_nothing_new_runs_no_sql(world, django_assert_num_queries):
    tenant, _, _ = world
    token = mint(tenant.identity_secret, "u-1")
    get_inbox(tenant, token)
    with django_assert_num_queries(0):
        assert get_inbox(tenant, token).status_code == 200


def test_delivery_makes_a_new_message_visible_at_once(world):
    tenant, customer, _ = world
    token = mint(tenant.identity_secret, "u-1")
    assert len(get_inbox(tenant, token).json()["messages"]) == 1
    fresh = OutreachFactory(tenant=tenant, customer=customer, status="sent", sent_at=timezone.now())
    assert len(get_inbox(tenant, token).json()["messages"]) == 1  # cached, nobody told the inbox
    outreach_deliver(tenant=tenant, outreach_ids=[fresh.pk])
    assert len(get_inbox(tenant, token).json()["messages"]) == 2


def test_hostile_bodies_and_customer_data_come_out_inert(world):
    tenant, customer, message = world
    customer.name = '"><img src=x onerror=alert(1)>'
    customer.attributes = {"site": "javascript:alert(2)"}
    customer.save(update_fields=["name", "attributes"])
    Outreach.objects.for_tenant(tenant).filter(pk=message.pk).update(
        title="<script>alert(3)</script>{{ customer.name }}",
        body="<script>alert(4)</script> {{ customer.name }} [x]({{ customer.attributes.site }}) "
        '<a href="javascript:alert(5)" onclick="alert(6)">y</a>',
        cta_url="javascript:alert(7)",
    )
    data = get_inbox(tenant, mint(tenant.identity_secret, "u-1")).json()["messages"][0]
    assert executable_parts(data["body_html"]) == []
    assert data["cta_url"] == ""
    assert (
        data["title"] == '<script>alert(3)</script>"><img src=x onerror=alert(1)>'
    )  # text; widget uses textContent


def test_rate_limit_per_publishable_key(world, settings, monkeypatch):
    tenant, _, _ = world
    settings.INBOX_RATE_LIMIT_PER_MINUTE = 3
    monkeypatch.setattr(inbox_views.INBOX_LIMITER, "clock", lambda: 1_800_000_030.0)  # mid-minute, fixed
    token = mint(tenant.identity_secret, "u-1")
    codes = [get_inbox(tenant, token).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200]
    limited = get_inbox(tenant, token)
    assert limited.status_code == 429 and int(limited["Retry-After"]) == 30
