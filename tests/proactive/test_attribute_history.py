"""Attribute history: changes recorded with their time by the upsert, and read as of a cut-off."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from proactive.features.attributes import attribute_features
from proactive.ingest import customers_upsert
from proactive.models import Customer, CustomerAttributeChange
from proactive.scoring import training
from proactive.scoring.features import model_feature_names, model_matrices
from proactive.scoring.labels import customer_first_seen
from proactive.segment import segment_ingest
from tests.factories import TenantFactory
from tests.proactive.scoring_world import START

pytestmark = pytest.mark.django_db

T = START + timedelta(days=30)


def _history(tenant):
    """Every recorded value as (external_id, key, value, valid_from)."""
    rows = CustomerAttributeChange.objects.for_tenant(tenant).select_related("customer")
    values = [(r.customer.external_id, k, v, r.valid_from) for r in rows for k, v in r.attributes.items()]
    return sorted(values, key=lambda r: (r[0], r[1], r[3]))


def test_the_upsert_records_each_new_value_with_its_time(tenant):
    first = {"external_id": "a", "attributes": {"plan": "free", "seats": 3, "note": None}}
    customers_upsert(tenant=tenant, records=[first], now=START)
    assert _history(tenant) == [
        ("a", "note", None, START),
        ("a", "plan", "free", START),
        ("a", "seats", 3, START),
    ]

    customers_upsert(tenant=tenant, records=[first], now=T)  # identical resend
    customers_upsert(tenant=tenant, records=[{"external_id": "a", "name": "Ada"}], now=T)
    assert len(_history(tenant)) == 3

    later = T + timedelta(days=1)
    changed = {"external_id": "a", "attributes": {"plan": "pro", "seats": 3.0, "note": None}}
    customers_upsert(tenant=tenant, records=[changed, {"external_id": "b", "attributes": {}}], now=later)
    assert ("a", "plan", "pro", later) in _history(tenant)  # 3.0 == 3: no new seats row
    assert len(_history(tenant)) == 4

    customers_upsert(tenant=tenant, records=[{"external_id": "a", "attributes": {"plan": None}}], now=later)
    assert ("a", "plan", None, later) in _history(tenant)  # cleared at the same time: the last word
    assert ("a", "plan", "pro", later) not in _history(tenant)


def test_a_segment_identify_sent_twice_records_its_traits_once(tenant):
    identify = {"type": "identify", "userId": "u1", "messageId": "m1", "traits": {"plan": "pro", "seats": 4}}
    segment_ingest(tenant=tenant, messages=[identify], now=START)
    segment_ingest(tenant=tenant, messages=[{**identify, "messageId": "m2"}], now=T)
    assert [(k, v, t) for _, k, v, t in _history(tenant)] == [("plan", "pro", START), ("seats", 4, START)]


def test_history_is_scoped_to_its_tenant(tenant):
    other = TenantFactory(slug="other")
    customers_upsert(tenant=tenant, records=[{"external_id": "a", "attributes": {"plan": "free"}}], now=START)
    customers_upsert(tenant=other, records=[{"external_id": "a", "attributes": {"plan": "gold"}}], now=START)
    assert _history(tenant) == [("a", "plan", "free", START)]
    assert [str(f) for f in attribute_features(tenant_id=tenant.pk, as_of=T)] == []  # 1 customer < minimum


@pytest.fixture
def plans(tenant):
    """12 customers on "free" with seats 1..12 from START; after T 10 of them move to "legacy"
    with more seats, and a 13th customer arrives."""
    base = [
        {
            "external_id": f"c{i:02d}",
            "signed_up_at": START.isoformat(),
            "attributes": {"plan": "free", "seats": i},
        }
        for i in range(1, 13)
    ]
    customers_upsert(tenant=tenant, records=base, now=START)
    moved = [
        {"external_id": f"c{i:02d}", "attributes": {"plan": "legacy", "seats": 10 * i}} for i in range(1, 11)
    ]
    newcomer = {"external_id": "late", "signed_up_at": START.isoformat(), "attributes": {"plan": "legacy"}}
    customers_upsert(tenant=tenant, records=[*moved, newcomer], now=T + timedelta(hours=1))
    return tenant


def _ids(tenant):
    return dict(Customer.objects.for_tenant(tenant).values_list("external_id", "pk"))


def test_an_attribute_changed_after_t_is_not_seen_as_of_t(plans):
    assert [n for n in model_feature_names(plans, T) if n.startswith("attribute.")] == [
        "attribute.plan=free",
        "attribute.seats",
    ]  # "legacy" did not exist yet
    later = T + timedelta(days=1)
    names = ["attribute.plan=free", "attribute.plan=legacy", "attribute.seats", "count(*, 7)"]
    assert set(names[:3]) <= set(model_feature_names(plans, later))
    ids = _ids(plans)
    got, (at_t, after) = model_matrices(
        tenant=plans, as_ofs=[T, later], names=names, lo=min(ids.values()), hi=max(ids.values())
    )
    row = {e: int(np.searchsorted(got, pk)) for e, pk in ids.items()}
    assert at_t[row["c01"]].tolist()[:3] == [1.0, 0.0, 1.0]
    assert after[row["c01"]].tolist()[:3] == [0.0, 1.0, 10.0]
    assert after[row["c12"]].tolist()[:3] == [1.0, 0.0, 12.0]
    assert np.isnan(at_t[row["late"], :3]).all()  # not known at T
    assert after[row["late"]].tolist()[:2] == [0.0, 1.0] and np.isnan(after[row["late"], 2])

    # A training snapshot at cut-off T, and scoring as of T (range_features is what it reads).
    first_ids, first_seen = customer_first_seen(tenant=plans)
    snaps = training.build_snapshots(
        tenant=plans, cutoffs=[T], names=names, horizon_days=14, first_ids=first_ids, first_seen=first_seen
    )
    one = int(np.flatnonzero(snaps.customer_ids == ids["c01"])[0])
    assert snaps.x[one, :3].tolist() == [1.0, 0.0, 1.0]
    scored_ids, scored = training.range_features(
        tenant=plans, as_of=T, names=names, lo=min(ids.values()), hi=max(ids.values())
    )
    assert scored[int(np.searchsorted(scored_ids, ids["c01"])), :3].tolist() == [1.0, 0.0, 1.0]


def test_an_email_or_an_id_never_becomes_columns(tenant):
    rows = [
        {"external_id": f"c{i}", "attributes": {"email": f"c{i}@example.com", "tier": f"t{i % 30}"}}
        for i in range(400)
    ]
    customers_upsert(tenant=tenant, records=rows, now=START)
    names = [str(f) for f in attribute_features(tenant_id=tenant.pk, as_of=T)]
    assert not any(n.startswith("attribute.email") for n in names)
    assert len(names) == 20  # the 20 most common of 30 tier values (13-14 customers each)


@pytest.mark.django_db(transaction=True)
def test_the_migration_seeds_existing_customers_from_their_created_at():
    executor = MigrationExecutor(connection)
    executor.migrate([("proactive", "0009_customer_attribute_change")])
    tenant = TenantFactory(slug="seeded")
    Customer.objects.create(
        tenant=tenant, external_id="a", attributes={"plan": "pro", "gone": None}, created_at=T
    )
    Customer.objects.create(tenant=tenant, external_id="b", created_at=START)
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert _history(tenant) == [("a", "gone", None, T), ("a", "plan", "pro", T)]


def test_an_admin_edit_of_the_attributes_enters_the_history(tenant, admin_client_for):
    customers_upsert(
        tenant=tenant, records=[{"external_id": "a", "attributes": {"plan": "free", "seats": 3}}]
    )
    customer = Customer.objects.for_tenant(tenant).get(external_id="a")

    def edit(attributes):
        data = {"tenant": tenant.pk, "external_id": "a", "name": "", "email": "", "attributes": attributes}
        data["created_at_0"], data["created_at_1"] = "2026-01-01", "00:00:00"
        data["updated_at_0"], data["updated_at_1"] = "2026-01-01", "00:00:00"
        return admin_client_for.post(f"/admin/proactive/customer/{customer.pk}/change/", data)

    assert edit('{"plan": "pro", "region": "eu"}').status_code == 302
    changes = list(CustomerAttributeChange.objects.for_tenant(tenant).order_by("valid_from"))
    assert len(changes) == 2
    assert changes[-1].attributes == {"plan": "pro", "region": "eu", "seats": None}  # seats removed
    assert edit('{"plan": "pro", "region": "eu"}').status_code == 302  # saved unchanged: no row
    assert CustomerAttributeChange.objects.for_tenant(tenant).count() == 2
    refused = edit("[1, 2]")
    assert refused.status_code == 200 and "must be a JSON object" in refused.content.decode()
    assert CustomerAttributeChange.objects.for_tenant(tenant).count() == 2
    # The model reads the edit as of any time after it.
    names = ["attribute.plan=pro", "attribute.seats"]
    later = changes[-1].valid_from + timedelta(seconds=1)
    _, (row,) = model_matrices(tenant=tenant, as_ofs=[later], names=names, lo=customer.pk, hi=customer.pk)
    assert row[0, 0] == 1 and np.isnan(row[0, 1])
