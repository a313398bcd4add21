"""The Segment-compatible source, driven by Segment's and RudderStack's own Python libraries
against a live server, and checked through the API."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.test import Client
from django.utils import timezone
from rudderstack.analytics.client import Client as RudderClient
from segment.analytics.client import Client as SegmentClient

from accounts.services import api_key_create
from proactive.models import Customer, Signal
from proactive.segment import event_name
from tests.factories import TenantFactory


@pytest.fixture
def live_tenant(transactional_db):
    tenant = TenantFactory(slug="seg", name="Seg")
    return tenant, api_key_create(tenant=tenant).secret


def basic(secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{secret}:".encode()).decode()}


def signals_of(tenant, **filters):
    return list(
        Signal.objects.for_tenant(tenant).filter(**filters).select_related("customer").order_by("key")
    )


def profile(secret: str, external_id: str) -> dict:
    response = Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get(f"/api/v1/customers/{external_id}")
    assert response.status_code == 200, response.content
    return response.json()


def test_event_names_are_normalised_to_the_signal_grammar():
    assert event_name("Order Completed") == "order_completed"
    assert event_name("  Signed Up!! ") == "_signed_up_"
    assert event_name("Checkout: Step 2 / Viewed") == "checkout:_step_2_viewed"
    assert event_name("already.ok-name_1") == "already.ok-name_1"


def test_segments_library_track_identify_page_screen_and_a_resend(live_server, live_tenant):
    tenant, secret = live_tenant
    failures = []
    client = SegmentClient(
        write_key=secret,
        host=f"{live_server.url}/ingest/segment",
        sync_mode=True,
        gzip=True,
        max_retries=0,
        on_error=lambda error, batch: failures.append(error),
    )
    signed_up = datetime(2025, 3, 1, 12, tzinfo=UTC)
    client.identify(
        "u-1",
        {"name": "Ada", "email": "ada@example.com", "createdAt": signed_up, "plan": "pro", "seats": 12},
    )
    at = timezone.now() - timedelta(minutes=3)
    client.track("u-1", "Order Completed", {"total": 42.5}, timestamp=at, message_id="m-order-1")
    client.track("u-1", "Order Completed", {"total": 42.5}, timestamp=at, message_id="m-order-1")  # resend
    old = at - timedelta(days=3)
    client.track("u-1", "Order Completed", {"total": 7}, timestamp=old, message_id="m-order-0")
    client.page("u-1", category="Docs", name="Pricing", properties={"path": "/pricing"}, message_id="m-page")
    client.screen("u-1", name="Home", message_id="m-screen")
    client.track("u-2", "Report Exported", message_id="m-new-user")
    assert failures == []

    order = signals_of(tenant, key="m-order-1")
    assert len(order) == 1  # the resend was a duplicate
    assert (order[0].name, order[0].customer.external_id, order[0].properties) == (
        "order_completed",
        "u-1",
        {"total": 42.5},
    )
    assert abs(order[0].timestamp - at) < timedelta(milliseconds=1)
    page = signals_of(tenant, key="m-page")[0]
    assert (page.name, page.properties) == (
        "page.viewed",
        {"path": "/pricing", "name": "Pricing", "category": "Docs"},
    )
    assert (signals_of(tenant, key="m-screen")[0].name, signals_of(tenant, key="m-screen")[0].properties) == (
        "screen.viewed",
        {"name": "Home"},
    )
    # Through the API: the identified customer, and the customer a track alone created.
    ada = profile(secret, "u-1")
    assert (ada["name"], ada["email"]) == ("Ada", "ada@example.com")
    assert datetime.fromisoformat(ada["signed_up_at"]) == signed_up
    assert ada["attributes"] == {"plan": "pro", "seats": 12}
    # 1 = today's raw signals; 7 also reads the daily rollups (the order three days ago).
    assert (ada["features"]["count(order_completed, 1)"], ada["features"]["count(order_completed, 7)"]) == (
        1,
        2,
    )
    assert ada["features"]["count(page.*, 1)"] == 1
    assert profile(secret, "u-2")["features"]["count(report_exported, 1)"] == 1


def test_rudderstacks_library_gzip_batch_with_a_resend(live_server, live_tenant):
    tenant, secret = live_tenant
    failures = []
    client = RudderClient(
        write_key=secret,
        host=f"{live_server.url}/ingest/segment",
        gzip=True,
        max_retries=0,
        upload_size=50,
        on_error=lambda error, batch: failures.append(error),
    )
    client.identify("r-1", {"name": "Grace", "email": "grace@example.com", "team": "ops"})
    for i in range(30):
        client.track(f"r-{i % 3}", "Sync Failed", {"attempt": i}, message_id=f"rs-{i}")
    client.page("r-1", name="Settings", message_id="rs-page")
    client.flush()
    # The same messages again, in one batch: all duplicates.
    for i in range(30):
        client.track(f"r-{i % 3}", "Sync Failed", {"attempt": i}, message_id=f"rs-{i}")
    client.shutdown()
    assert failures == []

    stored = signals_of(tenant, name="sync_failed")
    assert [s.key for s in stored] == sorted(f"rs-{i}" for i in range(30))
    assert {s.key: s.properties["attempt"] for s in stored}["rs-7"] == 7
    grace = profile(secret, "r-1")
    assert (grace["name"], grace["email"], grace["attributes"]) == (
        "Grace",
        "grace@example.com",
        {"team": "ops"},
    )
    assert grace["features"]["count(sync_failed, 1)"] == 10
    assert grace["features"]["count(page.*, 1)"] == 1
    assert Customer.objects.for_tenant(tenant).count() == 3


def test_a_gzip_batch_reports_duplicates_and_per_message_errors(live_server, live_tenant):
    tenant, secret = live_tenant
    now = timezone.now()
    batch = [
        {"type": "track", "messageId": "g-1", "userId": "u-9", "event": "Signed Up",
         "timestamp": now.isoformat()},
        {"type": "track", "messageId": "g-2", "anonymousId": "anon-1", "event": "Signed Up",
         "timestamp": now.isoformat()},
        {"type": "track", "messageId": "g-3", "userId": "u-9", "event": "Signed Up",
         "timestamp": "yesterday"},
        {"type": "track", "messageId": "g-4", "userId": "u-9", "event": "Later",
         "originalTimestamp": (now - timedelta(hours=2)).isoformat()},
        {"type": "track", "messageId": "g-5", "userId": "u-9", "event": "Too Soon",
         "timestamp": (now + timedelta(hours=3)).isoformat()},
        {"type": "identify", "messageId": "g-6", "userId": "u-9", "traits": {"email": "not an email"}},
        {"type": "group", "messageId": "g-7", "userId": "u-9", "groupId": "acme"},
        {"type": "track", "userId": "u-9", "event": "No Id", "timestamp": now.isoformat()},
    ]  # fmt: skip
    url = f"{live_server.url}/ingest/segment/v1/batch"
    body = gzip.compress(json.dumps({"batch": batch}).encode())
    headers = {**basic(secret), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    first = requests.post(url, data=body, headers=headers, timeout=30)
    assert first.status_code == 200, first.text
    got = first.json()
    assert (got["success"], got["accepted"], got["duplicates"], got["rejected"]) == (True, 2, 0, 6)
    errors = {e["index"]: e for e in got["errors"]}
    assert sorted(errors) == [1, 2, 4, 5, 6, 7]
    assert "userId" in errors[1]["error"] and errors[1]["id"] == "g-2"
    assert "'timestamp'" in errors[2]["error"] and "ISO 8601" in errors[2]["error"]
    assert "future" in errors[4]["error"]
    assert "traits.email" in errors[5]["error"]
    assert "group" in errors[6]["error"]
    assert "messageId" in errors[7]["error"] and errors[7]["id"] is None
    again = requests.post(url, data=body, headers=headers, timeout=30).json()
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 2, 6)
    assert [s.key for s in signals_of(tenant)] == ["g-1", "g-4"]
    assert signals_of(tenant, key="g-4")[0].name == "later"


def test_single_message_routes_take_the_type_from_the_path(live_server, live_tenant):
    tenant, secret = live_tenant
    now = timezone.now().isoformat()
    base = f"{live_server.url}/ingest/segment/v1"
    track = {"messageId": "t-1", "userId": "u-5", "event": "Opened App", "timestamp": now}
    assert (
        requests.post(f"{base}/track", json=track, headers=basic(secret), timeout=30).json()["accepted"] == 1
    )
    page = {"messageId": "p-1", "userId": "u-5", "name": "Pricing", "timestamp": now}
    assert requests.post(f"{base}/page", json=page, headers=basic(secret), timeout=30).json()["accepted"] == 1
    ident = {"messageId": "i-1", "userId": "u-5", "traits": {"name": "Lin"}}
    assert (
        requests.post(f"{base}/identify", json=ident, headers=basic(secret), timeout=30).json()["accepted"]
        == 1
    )
    assert [(s.key, s.name) for s in signals_of(tenant)] == [("p-1", "page.viewed"), ("t-1", "opened_app")]
    assert Customer.objects.for_tenant(tenant).get(external_id="u-5").name == "Lin"


def test_whole_request_failures(live_server, live_tenant, settings):
    tenant, secret = live_tenant
    url = f"{live_server.url}/ingest/segment/v1/batch"
    msg = {"type": "track", "userId": "u", "event": "x", "timestamp": timezone.now().isoformat()}
    ok = {"batch": [{**msg, "messageId": "w-1"}]}
    bad_key = requests.post(url, json=ok, headers=basic("sk_" + "x" * 40), timeout=30)
    assert bad_key.status_code == 401 and bad_key.headers["WWW-Authenticate"].startswith("Basic")
    assert requests.post(url, json=ok, timeout=30).status_code == 401
    too_many = {"batch": [{**msg, "messageId": f"o-{i}"} for i in range(10_001)]}
    assert requests.post(url, json=too_many, headers=basic(secret), timeout=60).status_code == 413
    # 11 MB of JSON that gzips to a few KB: refused after inflating at most 10 MB.
    bomb = gzip.compress(json.dumps({"batch": [], "pad": "a" * (11 * 1024 * 1024)}).encode())
    headers = {**basic(secret), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    assert requests.post(url, data=bomb, headers=headers, timeout=60).status_code == 413
    not_gzip = requests.post(url, data=b"{}", headers=headers, timeout=30)
    assert not_gzip.status_code == 400
    assert requests.post(url, json={"batch": "nope"}, headers=basic(secret), timeout=30).status_code == 400
    assert Signal.objects.for_tenant(tenant).count() == 0
    settings.API_RATE_LIMIT_PER_MINUTE = 0
    limited = requests.post(url, json=ok, headers=basic(secret), timeout=30)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert Signal.objects.for_tenant(tenant).count() == 0
