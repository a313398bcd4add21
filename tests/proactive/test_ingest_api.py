from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from accounts.services import api_key_create
from proactive import api as proactive_api
from proactive.models import Customer, RiskScore, Signal, SignalDaily, SignalName, SignalRollupDelta
from proactive.rollups import rollups_fold
from tests.factories import TenantFactory

SIGNALS = "/api/v1/signals/batch"
CUSTOMERS = "/api/v1/customers/batch"


def post(client, url, payload):
    return client.post(url, data=json.dumps(payload), content_type="application/json")


def sig(key, customer="c1", name="session.started", ts=None, **extra):
    ts = ts or (timezone.now() - timedelta(minutes=5))
    return {"id": key, "customer": customer, "name": name, "timestamp": ts.isoformat(), **extra}


def test_a_mixed_batch_stores_the_good_records_and_reports_the_bad(api, tenant):
    future = timezone.now() + timedelta(hours=2)
    batch = [
        sig("k1"),
        sig("k2", name="Bad Name"),
        sig("k3", ts=future),
        {"id": "k4", "customer": "c1", "name": "x", "timestamp": "2025-01-01T00:00:00"},
        "not an object",
        sig("k6", customer="c2", properties={"plan": "pro"}),
        sig("k7", properties=[1]),
        {"customer": "c1", "name": "x", "timestamp": "2025-01-01T00:00:00Z"},
    ]
    response = post(api, SIGNALS, {"signals": batch})
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 0, 6)
    assert [(e["index"], e["id"]) for e in body["errors"]] == [
        (1, "k2"),
        (2, "k3"),
        (3, "k4"),
        (4, None),
        (6, "k7"),
        (7, None),
    ]
    assert "future" in body["errors"][1]["error"]
    assert "offset" in body["errors"][2]["error"]
    assert set(Signal.objects.for_tenant(tenant).values_list("key", flat=True)) == {"k1", "k6"}
    assert set(Customer.objects.for_tenant(tenant).values_list("external_id", flat=True)) == {"c1", "c2"}
    assert Signal.objects.for_tenant(tenant).get(key="k6").properties == {"plan": "pro"}


def test_resends_are_counted_as_duplicates_and_never_stored_twice(api, tenant):
    batch = [sig(f"k{i}", customer=f"c{i % 3}") for i in range(10)] + [sig("k1")]
    first = post(api, SIGNALS, {"signals": batch}).json()
    assert (first["accepted"], first["duplicates"]) == (10, 1)
    again = post(api, SIGNALS, {"signals": batch}).json()
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 11, 0)
    assert Signal.objects.for_tenant(tenant).count() == 10
    rollups_fold(tenant_id=tenant.pk)
    assert sum(SignalDaily.objects.for_tenant(tenant).values_list("count", flat=True)) == 10
    assert SignalName.objects.for_tenant(tenant).get(name="session.started").total == 10


def test_rollups_follow_the_inserted_rows(api, tenant):
    day = datetime(2025, 5, 3, 23, 59, tzinfo=UTC)
    batch = [
        sig("a", ts=day),
        sig("b", ts=day - timedelta(hours=3)),
        sig("c", ts=day + timedelta(minutes=2)),
        sig("d", name="error.x", ts=day),
    ]
    post(api, SIGNALS, {"signals": batch})
    rollups_fold(tenant_id=tenant.pk)
    rows = {(r.name, r.day.isoformat()): (r.count, r.last_at) for r in SignalDaily.objects.for_tenant(tenant)}
    assert rows == {
        ("session.started", "2025-05-03"): (2, day),
        ("session.started", "2025-05-04"): (1, day + timedelta(minutes=2)),
        ("error.x", "2025-05-03"): (1, day),
    }
    name = SignalName.objects.for_tenant(tenant).get(name="session.started")
    assert (name.total, name.first_seen, name.last_seen) == (
        3,
        day - timedelta(hours=3),
        day + timedelta(minutes=2),
    )


def test_the_same_key_in_another_tenant_is_a_different_signal(api, tenant):
    other = TenantFactory()
    other_api = Client(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=other).secret}")
    assert post(api, SIGNALS, {"signals": [sig("shared")]}).json()["accepted"] == 1
    assert post(other_api, SIGNALS, {"signals": [sig("shared")]}).json()["accepted"] == 1
    assert Signal.objects.for_tenant(other).get().customer.tenant_id == other.pk


@pytest.mark.parametrize(
    "body",
    ["{not json", "[]", '{"signals": {}}', '{"other": []}', "\xff\xfe"],
)
def test_malformed_requests_are_400(api, tenant, body):
    response = api.post(SIGNALS, data=body.encode("latin-1"), content_type="application/json")
    assert response.status_code == 400
    assert Signal.objects.for_tenant(tenant).count() == 0


def test_a_bad_key_is_401(tenant):
    response = post(
        Client(HTTP_AUTHORIZATION="Bearer sk_nottherealkey12345"), SIGNALS, {"signals": [sig("k")]}
    )
    assert response.status_code == 401
    assert post(Client(), SIGNALS, {"signals": [sig("k")]}).status_code in (401, 403)
    assert Signal.objects.for_tenant(tenant).count() == 0


def test_over_10000_signals_is_413_and_writes_nothing(api, tenant):
    batch = [sig(f"k{i}") for i in range(10_001)]
    assert post(api, SIGNALS, {"signals": batch}).status_code == 413
    assert Signal.objects.for_tenant(tenant).count() == 0


def test_over_10_mb_is_413(api, tenant):
    blob = "x" * 1200  # 9,000 x ~1.3 kB > 10 MiB
    batch = [sig(f"k{i}", properties={"blob": blob}) for i in range(9_000)]
    response = post(api, SIGNALS, {"signals": batch})
    assert response.status_code == 413
    assert Signal.objects.for_tenant(tenant).count() == 0


def test_exactly_10000_signals_are_accepted(api, tenant):
    batch = [sig(f"k{i}", customer=f"c{i % 50}") for i in range(10_000)]
    assert post(api, SIGNALS, {"signals": batch}).json()["accepted"] == 10_000


def test_the_rate_limit_is_per_key_with_retry_after(api, tenant, settings, monkeypatch):
    settings.API_RATE_LIMIT_PER_MINUTE = 2
    # A fixed clock 10 s into a minute: the test cannot straddle a window boundary.
    monkeypatch.setattr(proactive_api.SERVER_KEY_LIMITER, "clock", lambda: 1_800_000_010.0)
    other = Client(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=tenant).secret}")
    codes = [post(api, SIGNALS, {"signals": []}).status_code for _ in range(3)]
    assert codes[:2] == [200, 200]
    limited = post(api, SIGNALS, {"signals": [sig("k")]})
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) == 50
    assert post(other, SIGNALS, {"signals": []}).status_code == 200
    assert Signal.objects.for_tenant(tenant).count() == 0


def test_nothing_is_half_written_when_the_rollup_delta_fails(api, tenant, monkeypatch):
    """The rollup delta is appended after the customers were created and the signals COPYed."""
    from proactive import ingest

    monkeypatch.setattr(
        ingest, "DELTA_SQL", ingest.DELTA_SQL.replace("VALUES (%s, %s", "VALUES (%s, 1 / 0 || %s")
    )
    client = Client(raise_request_exception=False, HTTP_AUTHORIZATION=api.defaults["HTTP_AUTHORIZATION"])
    response = post(client, SIGNALS, {"signals": [sig("k1", customer="new"), sig("k2")]})
    assert response.status_code == 500
    assert Signal.objects.for_tenant(tenant).count() == 0
    assert Customer.objects.for_tenant(tenant).count() == 0
    assert SignalRollupDelta.objects.for_tenant(tenant).count() == 0
    rollups_fold(tenant_id=tenant.pk)
    assert SignalDaily.objects.for_tenant(tenant).count() == 0
    assert SignalName.objects.for_tenant(tenant).count() == 0


def test_awkward_text_is_stored_exactly_and_lone_surrogates_are_per_record_errors(api, tenant):
    """Keys and properties go into COPY's text format: tabs, newlines and backslashes are escaped."""
    key = "a\tb\nc\\d\re"
    props = {"path": "C:\\tmp\\new", "note": "line1\nline2\t\u00e9\u4e2d", "nested": {"q": '"\\N'}}
    body = (
        '{"signals": ['
        + json.dumps(sig(key, customer="c\\1", properties=props))
        + ","
        + json.dumps(sig("lone", properties={"x": "\ud800"}))
        + ","
        + json.dumps(sig("\udc00"))
        + ","
        + json.dumps(sig("\\N"))
        + "]}"
    )
    response = api.post(SIGNALS, data=body, content_type="application/json")
    assert response.status_code == 200, response.content
    got = response.json()
    assert (got["accepted"], got["rejected"]) == (2, 2)
    assert [(e["index"], "surrogate" in e["error"]) for e in got["errors"]] == [(1, True), (2, True)]
    stored = Signal.objects.for_tenant(tenant).select_related("customer").get(key=key)
    assert stored.properties == props
    assert stored.customer.external_id == "c\\1"
    assert Signal.objects.for_tenant(tenant).filter(key="\\N").exists()


def test_a_key_race_retries_and_then_falls_back_to_on_conflict(api, tenant, monkeypatch):
    """A probe that misses stored keys (what a concurrent commit looks like) makes the COPY fail
    on the unique index; the batch is retried and finally stored with ON CONFLICT DO NOTHING."""
    from proactive import ingest

    first = [sig(f"k{i}", customer=f"c{i % 3}") for i in range(6)]
    assert post(api, SIGNALS, {"signals": first}).json()["accepted"] == 6
    calls = []
    real = ingest._store

    def spy(*args, **kwargs):
        calls.append(kwargs["fast"])
        return real(*args, **kwargs)

    monkeypatch.setattr(ingest, "EXISTING_KEYS_SQL", ingest.EXISTING_KEYS_SQL + " AND false")
    monkeypatch.setattr(ingest, "_store", spy)
    again = first + [sig("k9", customer="c9", ts=datetime(2025, 5, 3, 12, tzinfo=UTC))]
    body = post(api, SIGNALS, {"signals": again}).json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 6, 0)
    assert calls == [True] * (ingest.FAST_ATTEMPTS - 1) + [False]
    assert Signal.objects.for_tenant(tenant).count() == 7
    rollups_fold(tenant_id=tenant.pk)
    assert sum(SignalDaily.objects.for_tenant(tenant).values_list("count", flat=True)) == 7
    day = SignalDaily.objects.for_tenant(tenant).get(customer__external_id="c9")
    assert (day.day.isoformat(), day.count) == ("2025-05-03", 1)
    assert SignalName.objects.for_tenant(tenant).get(name="session.started").total == 7


def test_the_on_conflict_path_keeps_every_contract_semantic(api, tenant, monkeypatch):
    from proactive import ingest

    monkeypatch.setattr(ingest, "FAST_ATTEMPTS", 1)
    batch = [sig(f"k{i}", customer=f"c{i % 3}") for i in range(5)] + [sig("k1"), sig("bad", name="Bad")]
    body = post(api, SIGNALS, {"signals": batch}).json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (5, 1, 1)
    body = post(api, SIGNALS, {"signals": batch}).json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (0, 6, 1)
    assert Signal.objects.for_tenant(tenant).count() == 5
    rollups_fold(tenant_id=tenant.pk)
    assert sum(SignalDaily.objects.for_tenant(tenant).values_list("count", flat=True)) == 5


@pytest.mark.django_db(transaction=True)
def test_concurrent_resends_store_exactly_one_row_per_key():
    tenant = TenantFactory()
    secret = api_key_create(tenant=tenant).secret
    batch = [sig(f"k{i}", customer=f"c{i % 7}", name=f"n.{i % 3}") for i in range(300)]
    results, errors = [], []
    barrier = threading.Barrier(4)

    def send():
        try:
            client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
            barrier.wait()
            results.append(post(client, SIGNALS, {"signals": batch}).json())
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(r["accepted"] for r in results) == 300
    assert sum(r["duplicates"] for r in results) == 900
    assert Signal.objects.for_tenant(tenant).count() == 300
    assert Customer.objects.for_tenant(tenant).count() == 7
    rollups_fold(tenant_id=tenant.pk)
    assert sum(SignalDaily.objects.for_tenant(tenant).values_list("count", flat=True)) == 300
    assert sum(SignalName.objects.for_tenant(tenant).values_list("total", flat=True)) == 300


def test_customers_batch_creates_updates_and_merges_attributes(api, tenant):
    first = post(
        api,
        CUSTOMERS,
        {
            "customers": [
                {"external_id": "c1", "name": "Ada", "attributes": {"plan": "free", "seats": 3}},
                {"external_id": "c2", "email": "c2@example.com", "signed_up_at": "2025-01-02T03:04:05+02:00"},
                {"external_id": ""},
                {"external_id": "c3", "email": "nope"},
                {"external_id": "c4", "signed_up_at": "yesterday"},
                {"external_id": "c5", "attributes": [1]},
            ]
        },
    ).json()
    assert (first["created"], first["updated"]) == (2, 0)
    assert [e["index"] for e in first["errors"]] == [2, 3, 4, 5]
    second = post(
        api,
        CUSTOMERS,
        {"customers": [{"external_id": "c1", "attributes": {"plan": "pro"}}, {"external_id": "c9"}]},
    ).json()
    assert (second["created"], second["updated"], second["errors"]) == (1, 1, [])
    c1 = Customer.objects.for_tenant(tenant).get(external_id="c1")
    assert (c1.name, c1.attributes) == ("Ada", {"plan": "pro", "seats": 3})
    c2 = Customer.objects.for_tenant(tenant).get(external_id="c2")
    assert c2.signed_up_at == datetime(2025, 1, 2, 1, 4, 5, tzinfo=UTC)


def test_a_customer_batch_that_repeats_an_external_id_merges_in_order(api, tenant):
    body = post(
        api,
        CUSTOMERS,
        {
            "customers": [
                {"external_id": "c1", "name": "A", "attributes": {"x": 1}},
                {"external_id": "c1", "attributes": {"y": 2}},
            ]
        },
    ).json()
    assert (body["created"], body["updated"]) == (1, 0)
    c1 = Customer.objects.for_tenant(tenant).get(external_id="c1")
    assert (c1.name, c1.attributes) == ("A", {"x": 1, "y": 2})


def test_the_customer_profile_has_features_and_risk(api, tenant):
    post(
        api, CUSTOMERS, {"customers": [{"external_id": "c/1", "name": "Ada", "attributes": {"plan": "pro"}}]}
    )
    post(api, SIGNALS, {"signals": [sig("k1", customer="c/1", name="error.sync_failed")]})
    body = api.get("/api/v1/customers/c/1").json()
    assert body["name"] == "Ada" and body["attributes"] == {"plan": "pro"}
    assert body["features"]["count(error.*, 1)"] == 1.0
    assert body["features"]["attribute.plan=pro"] == 1.0
    assert body["risk"] is None
    customer = Customer.objects.for_tenant(tenant).get(external_id="c/1")
    RiskScore.objects.create(
        tenant=tenant,
        customer=customer,
        score=0.7,
        scored_at=timezone.now(),
        reasons=[{"feature": "count(error.*, 1)", "value": 1.0, "contribution": 0.4}],
    )
    risk = api.get("/api/v1/customers/c/1").json()["risk"]
    assert risk["score"] == 0.7 and risk["reasons"][0]["feature"] == "count(error.*, 1)"


def test_an_unknown_or_foreign_customer_is_404(api, tenant):
    other = TenantFactory()
    Customer.objects.create(tenant=other, external_id="theirs")
    assert api.get("/api/v1/customers/theirs").status_code == 404
    assert api.get("/api/v1/customers/nobody").status_code == 404


def test_the_schema_describes_the_ingestion_endpoints(api):
    schema = Client().get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert "/api/v1/signals/batch" in paths and "/api/v1/customers/{external_id}" in paths


json_trees = st.recursive(
    st.none() | st.integers() | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2)
    ),
    max_leaves=40,
)


def _nest(value, depth):
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    records=st.lists(
        json_trees | st.dictionaries(st.sampled_from(["id", "properties", "x"]), json_trees, max_size=3),
        max_size=4,
    ),
    extra=json_trees,
    pad=st.integers(0, 70),
    limit=st.integers(1, 8) | st.just(64),
)
def test_the_signals_depth_check_agrees_with_the_full_walk(records, extra, pad, limit):
    from accounts.api_parsers import json_depth_exceeds
    from proactive.api import _signals_depth_exceeds

    for data in (
        {"signals": records, "other": extra},
        {"signals": [*records, {"properties": _nest(1, pad)}]},
        {"signals": _nest(records, pad)},
        records,
    ):
        assert _signals_depth_exceeds(data, limit) == json_depth_exceeds(data, limit)
