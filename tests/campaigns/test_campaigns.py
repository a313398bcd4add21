from __future__ import annotations

from datetime import timedelta

from campaigns.campaign_sends import campaigns_send_due
from campaigns.firing import playbooks_evaluate
from campaigns.incidents import incident_open, incident_resolve, incidents_notify
from campaigns.models import Campaign, Incident, Outreach
from tests.campaigns.helpers import T0, add_signals, make_customers
from tests.factories import ACTION, CampaignFactory, PlaybookFactory

V1 = {"metric": "attribute.api_version", "op": "eq", "value": "v1"}
SYNC = {"metric": "count(error.sync_*, 1)", "op": "gte", "value": 1}


def outreach(tenant, **filters):
    return Outreach.objects.for_tenant(tenant).filter(**filters)


def test_a_campaign_is_sent_when_due_and_its_audience_is_frozen(tenant):
    make_customers(tenant, 30, api_version="v1")
    make_customers(tenant, 10, prefix="v2-", api_version="v2")
    campaign = CampaignFactory(tenant=tenant, audience=V1, send_at=T0, holdout_percent=10)
    assert campaigns_send_due(tenant=tenant, as_of=T0 - timedelta(minutes=1))["campaigns"] == 0
    result = campaigns_send_due(tenant=tenant, as_of=T0)
    assert result["campaigns"] == 1
    assert result["sent"] + result["held_out"] == 30
    campaign.refresh_from_db()
    assert (campaign.status, campaign.sent_at, campaign.audience_size) == (Campaign.Status.SENT, T0, 30)
    # Customers who join the audience later do not get it, and it is never sent again.
    make_customers(tenant, 5, prefix="late-", api_version="v1")
    assert campaigns_send_due(tenant=tenant, as_of=T0 + timedelta(hours=1))["campaigns"] == 0
    assert outreach(tenant, campaign=campaign).count() == 30
    assert not outreach(tenant, campaign=campaign, customer__external_id__startswith="late-").exists()


def test_a_cancelled_campaign_is_not_sent(tenant):
    make_customers(tenant, 3, api_version="v1")
    CampaignFactory(tenant=tenant, audience=V1, send_at=T0, status=Campaign.Status.CANCELLED)
    assert campaigns_send_due(tenant=tenant, as_of=T0)["campaigns"] == 0


def test_campaigns_share_the_contact_budget_with_playbooks(tenant):
    tenant.budget_max_messages = 1
    tenant.save(update_fields=["budget_max_messages"])
    customers = make_customers(tenant, 10, api_version="v1")
    add_signals(tenant, customers[:4], "error.sync_failed", T0 - timedelta(hours=1))
    PlaybookFactory(tenant=tenant, trigger=SYNC, holdout_percent=0)
    playbooks_evaluate(tenant=tenant, as_of=T0 - timedelta(minutes=5))
    CampaignFactory(tenant=tenant, audience=V1, send_at=T0, holdout_percent=0)
    result = campaigns_send_due(tenant=tenant, as_of=T0)
    assert (result["sent"], result["suppressed"]) == (6, 4)


def test_an_open_incident_notifies_overrides_the_budget_and_holds_back_other_nudges(tenant):
    tenant.budget_max_messages = 1
    tenant.save(update_fields=["budget_max_messages"])
    customers = make_customers(tenant, 10)
    add_signals(tenant, customers[:6], "error.sync_failed", T0 - timedelta(hours=1))
    nudge = PlaybookFactory(tenant=tenant, trigger=SYNC, holdout_percent=0)
    playbooks_evaluate(tenant=tenant, as_of=T0 - timedelta(days=1, hours=-23))  # budget used by nudges
    assert outreach(tenant, playbook=nudge, status="sent").count() == 6
    incident, result = incident_open(
        tenant=tenant,
        as_of=T0,
        data={
            "component": "sync",
            "title": "Sync down",
            "affected": SYNC,
            "notice": ACTION,
            "follow_up": {**ACTION, "title": "Fixed"},
        },
    )
    assert result["sent"] == 6  # overrides the exhausted budget
    assert outreach(tenant, incident=incident, status="sent").count() == 6
    # While open, another playbook's nudges to those customers are held back.
    other = PlaybookFactory(
        tenant=tenant,
        trigger=SYNC,
        holdout_percent=0,
        cooldown_days=1,
        action={"title": "other", "priority": "urgent"},
    )
    tenant.budget_max_messages = 10
    tenant.save(update_fields=["budget_max_messages"])
    playbooks_evaluate(tenant=tenant, as_of=T0 + timedelta(hours=1))
    held_back = outreach(tenant, playbook=other)
    assert held_back.count() == 6
    assert set(held_back.values_list("status", "suppressed_reason")) == {("suppressed", "incident open")}
    # Newly affected customers get the notice from the periodic task, once.
    add_signals(tenant, customers[6:8], "error.sync_failed", T0 + timedelta(hours=2))
    assert incidents_notify(tenant=tenant, as_of=T0 + timedelta(hours=2))["sent"] == 2
    assert incidents_notify(tenant=tenant, as_of=T0 + timedelta(hours=3))["fired"] == 0
    changed, follow = incident_resolve(tenant=tenant, incident=incident, as_of=T0 + timedelta(hours=4))
    assert changed
    assert follow["sent"] == 8
    incident.refresh_from_db()
    assert incident.status == Incident.Status.RESOLVED
    # After resolution other nudges flow again (next cooldown window of `other`).
    add_signals(tenant, customers[:8], "error.sync_failed", T0 + timedelta(hours=25))
    result = playbooks_evaluate(tenant=tenant, as_of=T0 + timedelta(hours=26))
    assert result["playbooks"][str(other.pk)].get("sent") == 8
