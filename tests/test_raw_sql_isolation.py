"""Raw SQL builders, two tenants: each builder, given tenant A, sees none of tenant B's rows.

The ORM's tenant scoping (accounts.scoping) cannot guard hand-written SQL, so every builder that
reads customers, signals, rollups or outreach with raw SQL is exercised here with a tenant B whose
customers share A's external ids, signal names and timestamps but whose data differ: a builder that
forgot its `tenant_id = %s` would count B's rows and fail.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from campaigns.budget import fatigue_get
from campaigns.effectiveness import effectiveness
from campaigns.firing import playbooks_evaluate
from campaigns.models import Outreach
from campaigns.outcomes import outcomes_sweep
from campaigns.playbooks import playbook_backtest, playbook_create, playbook_preview
from campaigns.webhook_events import outreach_events_emit
from proactive.chunks import customer_id_ranges
from proactive.features.attributes import attribute_features, attribute_matrices
from proactive.features.compute import compute_features, customer_features, features_query, range_matrices
from proactive.features.metrics import parse_metric
from proactive.ingest import customers_upsert
from proactive.models import Customer
from proactive.scoring.labels import customer_first_seen, labels_for, window_hits
from tests.campaigns.helpers import T0, add_signals, make_customers
from tests.factories import TenantFactory
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.signing import new_secret

pytestmark = pytest.mark.django_db

TRIGGER = {"all": [{"metric": "count(error.*, 7)", "op": "gte", "value": 1}]}
ACTION = {"channel": "in_app", "title": "Need help?", "body": "Hi"}


@pytest.fixture
def two_tenants():
    """A: 3 customers, one error each. B: 5 customers with A's external ids, 4 errors each,
    and a support contact each (A has none)."""
    a, b = TenantFactory(slug="raw-a"), TenantFactory(slug="raw-b")
    a_customers = make_customers(a, 3)
    b_customers = make_customers(b, 5)
    add_signals(a, a_customers, "error.sync_failed", T0 - timedelta(days=1))
    add_signals(b, b_customers, "error.sync_failed", T0 - timedelta(days=1), per_customer=4)
    add_signals(b, b_customers, "support.contact", T0 + timedelta(days=1))
    return a, b, {c.pk for c in a_customers}


def test_feature_builders_see_only_the_tenants_customers(two_tenants):
    a, _, a_ids = two_tenants
    metrics = [parse_metric("count(error.*, 7)"), parse_metric("days_since_last(*)")]
    frame = compute_features(tenant=a, as_of=T0, metrics=metrics)
    assert set(frame.customer_ids.tolist()) == a_ids
    assert frame.values[:, 0].tolist() == [1.0, 1.0, 1.0]
    sql, params, _ = features_query(tenant_id=a.pk, as_of=T0, metrics=metrics)
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(sql, params)
        rows = cur.fetchall()
    assert {r[0] for r in rows} == a_ids and all(r[1] == 1 for r in rows)
    lo, hi = min(a_ids), max(a_ids)
    ids, matrices = range_matrices(tenant=a, as_ofs=[T0], metrics=metrics, lo=lo, hi=hi)
    assert set(ids.tolist()) == a_ids and matrices[0][:, 0].tolist() == [1.0, 1.0, 1.0]
    one = customer_features(tenant=a, customer_id=min(a_ids), as_of=T0)
    assert one  # computed for A's own customer only
    assert customer_id_ranges(a) == [(lo, hi)]


def test_attribute_builders_see_only_the_tenants_history():
    """B's customers share A's external ids and keys, with other values and more customers."""
    a, b = TenantFactory(slug="raw-a"), TenantFactory(slug="raw-b")
    for tenant, plan, n in ((a, "free", 12), (b, "gold", 30)):
        rows = [{"external_id": f"c{i}", "attributes": {"plan": plan, "seats": 1}} for i in range(n)]
        customers_upsert(tenant=tenant, records=rows, now=T0 - timedelta(days=1))
    columns = attribute_features(tenant_id=a.pk, as_of=T0)
    assert [str(f) for f in columns] == ["attribute.plan=free", "attribute.seats"]
    ids = np.array(sorted(Customer.objects.for_tenant(a).values_list("pk", flat=True)))
    (matrix,) = attribute_matrices(tenant_id=a.pk, as_ofs=[T0], features=columns, ids=ids)
    assert matrix.tolist() == [[1.0, 1.0]] * 12


def test_label_builders_see_only_the_tenants_signals(two_tenants):
    a, _, a_ids = two_tenants
    hits = window_hits(tenant=a, cutoffs=[T0], horizon_days=14, patterns=["support.contact"])
    assert len(hits) == 0  # B's contacts are not A's
    ids, _ = customer_first_seen(tenant=a)
    assert set(ids.tolist()) == a_ids
    labels = labels_for(
        tenant=a, cutoffs=[T0], horizon_days=14, customer_ids=ids, cutoff_index=np.zeros(len(ids), dtype=int)
    )
    assert labels.tolist() == [0.0, 0.0, 0.0]


def test_playbook_builders_see_only_the_tenants_rows(two_tenants):
    a, b, _ = two_tenants
    assert playbook_preview(tenant=a, trigger=TRIGGER, as_of=T0)["matching"] == 3
    backtest = playbook_backtest(
        tenant=a, trigger=TRIGGER, days=3, window_days=3, as_of=T0 + timedelta(days=7)
    )
    assert all(day.get("contacted", 0) == 0 for day in backtest.get("days", []))
    playbook = playbook_create(tenant=a, data={"name": "Errors", "trigger": TRIGGER, "action": ACTION})
    fired = playbooks_evaluate(tenant=a, as_of=T0)
    assert fired["fired"] == 3
    assert Outreach.objects.unscoped().filter(tenant=b).count() == 0
    outcomes_sweep(tenant=a)
    assert not Outreach.objects.for_tenant(a).exclude(first_contact_at=None).exists()
    result = effectiveness(tenant=a, playbook=playbook, window_days=1, as_of=T0 + timedelta(days=3))
    contacted = result["treated"]["contacted"] + result["holdout"]["contacted"]
    assert contacted == 0
    fatigue = fatigue_get(tenant=a, now=T0 + timedelta(hours=1))
    assert fatigue.customers == 3 and sum(n for k, n in fatigue.window_counts.items() if k) <= 3


def test_webhook_emission_sees_only_the_tenants_outreach_and_subscriptions(two_tenants):
    a, b, _ = two_tenants
    hooks = {
        t.pk: WebhookEndpoint.objects.create(
            tenant=t, url="https://hooks.example.com/h", events=["outreach.created", "outreach.sent"],
            secret=new_secret(),
        )
        for t in (a, b)
    }  # fmt: skip
    playbook_create(tenant=b, data={"name": "Errors", "trigger": TRIGGER, "action": ACTION})
    playbooks_evaluate(tenant=b, as_of=T0)
    b_outreach = [str(pk) for pk in Outreach.objects.for_tenant(b).values_list("pk", flat=True)]
    b_owed = WebhookDelivery.objects.for_tenant(b).count()
    assert b_owed > 0
    # Tenant A naming B's outreach ids owes nothing to anyone.
    assert outreach_events_emit(tenant_id=a.pk, event_type="outreach.sent", outreach_ids=b_outreach) == 0
    assert WebhookDelivery.objects.for_tenant(b).count() == b_owed
    playbook_create(tenant=a, data={"name": "Errors", "trigger": TRIGGER, "action": ACTION})
    playbooks_evaluate(tenant=a, as_of=T0)
    owed = list(WebhookDelivery.objects.for_tenant(a))
    a_outreach = {str(pk) for pk in Outreach.objects.for_tenant(a).values_list("pk", flat=True)}
    assert owed and {d.endpoint_id for d in owed} == {hooks[a.pk].pk}
    assert {d.payload["data"]["id"] for d in owed} == a_outreach
    assert WebhookDelivery.objects.for_tenant(b).count() == b_owed
