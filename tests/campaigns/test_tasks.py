from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from campaigns.incidents import incident_open
from campaigns.models import Campaign, Outreach
from campaigns.tasks import schedule_due_campaigns, schedule_incident_notices
from tests.campaigns.helpers import add_signals, make_customers
from tests.factories import ACTION, CampaignFactory


def test_the_beat_tick_sends_due_campaigns_once(tenant):
    make_customers(tenant, 4, api_version="v1")
    due = CampaignFactory(
        tenant=tenant,
        audience={"metric": "attribute.api_version", "op": "eq", "value": "v1"},
        send_at=timezone.now() - timedelta(minutes=1),
        holdout_percent=0,
    )
    later = CampaignFactory(tenant=tenant, send_at=timezone.now() + timedelta(days=1))
    assert schedule_due_campaigns() == 1
    assert schedule_due_campaigns() == 0
    due.refresh_from_db()
    later.refresh_from_db()
    assert (due.status, later.status) == (Campaign.Status.SENT, Campaign.Status.SCHEDULED)
    assert Outreach.objects.for_tenant(tenant).filter(campaign=due, status="sent").count() == 4


def test_the_beat_tick_notifies_newly_affected_customers(tenant):
    customers = make_customers(tenant, 5)
    affected = {"metric": "count(error.sync_*, 1)", "op": "gte", "value": 1}
    incident, _ = incident_open(
        tenant=tenant, data={"component": "sync", "title": "Down", "affected": affected, "notice": ACTION}
    )
    add_signals(tenant, customers[:2], "error.sync_failed", timezone.now() - timedelta(minutes=5))
    assert schedule_incident_notices() == 1
    assert Outreach.objects.for_tenant(tenant).filter(incident=incident).count() == 2
