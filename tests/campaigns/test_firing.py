from __future__ import annotations

from datetime import timedelta

import pytest

from campaigns.models import Outreach
from campaigns.services import playbooks_evaluate
from tests.campaigns.helpers import T0, add_signals, make_customers
from tests.factories import PlaybookFactory

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
