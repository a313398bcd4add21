"""The incident builder: open an incident and edit a suspected or open one from the tenant pages,
with the condition-tree builder and the API's rules."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditLog, Membership
from campaigns.models import Incident, Outreach
from campaigns.monitoring import affected_condition, default_notice
from proactive.ingest import rollups_rebuild
from tests.dashboard.test_pages import client_for
from tests.factories import CustomerFactory, SignalFactory


@pytest.fixture
def world(tenant):
    now = timezone.now()
    for i in range(6):
        customer = CustomerFactory(
            tenant=tenant,
            external_id=f"c{i}",
            name=f"Cust {i}",
            attributes={"plan": "pro" if i < 3 else "free"},
            signed_up_at=now - timedelta(days=100),
        )
        for k in range(i):
            SignalFactory(
                tenant=tenant,
                customer=customer,
                name="error.sync_failed",
                timestamp=now - timedelta(hours=k + 1),
            )
    rollups_rebuild(tenant_id=tenant.pk)
    return tenant


def since_text(hours_ago: int) -> str:
    """A datetime-local value in the tenant's zone (UTC by default), to the minute."""
    return (timezone.now() - timedelta(hours=hours_ago)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def incident_form(**changes) -> dict:
    form = {
        "kind": "incident",
        "incident_title": "Bank sync failing",
        "component": "bank-sync",
        "node": ["r", "r.0", "r.1"],
        "type-r": "all",
        "type-r.0": "leaf",
        "measure-r.0": "count_since",
        "signal-r.0": "error.sync_failed",
        "since-r.0": since_text(3),
        "op-r.0": "gte",
        "value-r.0": "1",
        "type-r.1": "leaf",
        "measure-r.1": "attribute",
        "attr-r.1": "plan",
        "op-r.1": "eq",
        "value-r.1": "pro",
        "channel": "in_app",
        "title": "We know about the sync problem",
        "body": "Hi {{ customer.first_name }}, we are on it.",
        "priority": "high",
        "overrides_budget": "on",
    }
    return {**form, **changes}


def test_only_admins_open_and_edit_incidents(world):
    incident = Incident.objects.create(
        tenant=world,
        component="x",
        title="t",
        affected={"metric": "risk_score", "op": "gte", "value": 0.5},
        notice={"channel": "in_app", "title": "n", "body": "b"},
    )
    for role, status in [
        (Membership.Role.ADMIN, 200),
        (Membership.Role.AGENT, 403),
        (Membership.Role.VIEWER, 403),
    ]:
        client = client_for(world, role)
        assert client.get("/t/acme/incidents/new/").status_code == status
        assert client.get(f"/t/acme/incidents/{incident.pk}/edit/").status_code == status
    agent = client_for(world, Membership.Role.AGENT)
    assert agent.post("/t/acme/incidents/new/", incident_form()).status_code == 403
    assert Incident.objects.for_tenant(world).count() == 1
    listing = agent.get("/t/acme/incidents/").content.decode()
    assert 'id="new-incident"' not in listing
    assert (
        'id="new-incident"'
        in client_for(world, Membership.Role.ADMIN).get("/t/acme/incidents/").content.decode()
    )


def test_an_admin_opens_an_incident_built_from_the_picker(world):
    client = client_for(world, Membership.Role.ADMIN)
    panel = client.post("/t/acme/builder/panel/", incident_form()).content.decode()
    # a hit in the last 3 hours (c1..c5) AND pro (c0..c2): c1, c2
    assert '<strong id="match-count">2</strong> of 6' in panel
    assert "Affected customers" in panel and "Notice preview" in panel and "Hi Cust" in panel
    response = client.post("/t/acme/incidents/new/", incident_form())
    incident = Incident.objects.for_tenant(world).get()
    assert response.status_code == 302 and response["Location"] == f"/t/acme/incidents/{incident.pk}/"
    assert incident.status == Incident.Status.OPEN and incident.title == "Bank sync failing"
    assert incident.affected["all"][0]["metric"].startswith("count_since(error.sync_failed, ")
    assert incident.affected["all"][1] == {"metric": "attribute.plan", "op": "eq", "value": "pro"}
    assert incident.notice["priority"] == "high" and incident.follow_up is None
    sent = Outreach.objects.for_tenant(world).filter(incident=incident, status=Outreach.Status.SENT)
    assert sorted(sent.values_list("customer__external_id", flat=True)) == ["c1", "c2"]
    detail = client.get(response["Location"]).content.decode()
    assert "Incident opened: 2 affected customers notified." in detail and 'id="edit-incident"' in detail
    listing = client.get("/t/acme/incidents/").content.decode()
    assert "Bank sync failing" in listing


def test_bad_input_is_refused_with_the_apis_words(world):
    client = client_for(world, Membership.Role.ADMIN)
    response = client.post(
        "/t/acme/incidents/new/",
        incident_form(component="", **{"title": "", "since-r.0": "", "follow_up_on": "on", "fu_title": ""}),
    )
    html = response.content.decode()
    assert response.status_code == 400 and 'id="form-errors"' in html
    assert "Component: This field may not be blank." in html
    assert "Affected customers:" in html and "is not an ISO 8601 time" in html
    assert "Notice: title:" in html and "Follow-up: title:" in html  # named as the form labels them
    assert "Affected customers: condition 1, metric: " in html
    assert not Incident.objects.for_tenant(world).exists()
    # What was typed is kept for the next attempt.
    assert 'value="Bank sync failing"' in html and 'value="pro"' in html


def test_an_open_incident_is_edited_and_newly_affected_customers_are_notified(world):
    client = client_for(world, Membership.Role.ADMIN)
    client.post("/t/acme/incidents/new/", incident_form())
    incident = Incident.objects.for_tenant(world).get()
    form = client.get(f"/t/acme/incidents/{incident.pk}/edit/").content.decode()
    assert 'name="since-r.0"' in form and 'value="pro"' in form and 'id="open-warning"' in form
    assert "2 customers already got the notice" in form
    response = client.post(
        f"/t/acme/incidents/{incident.pk}/edit/",
        incident_form(
            incident_title="Bank sync failing for everyone",
            **{
                "value-r.1": "pro, free",
                "op-r.1": "in",
                "follow_up_on": "on",
                "fu_title": "Fixed",
                "fu_body": "ok",
            },
        ),
    )
    incident.refresh_from_db()
    assert response.status_code == 302 and incident.title == "Bank sync failing for everyone"
    assert incident.affected["all"][1] == {"metric": "attribute.plan", "op": "in", "value": ["pro", "free"]}
    assert incident.follow_up["title"] == "Fixed"
    notified = Outreach.objects.for_tenant(world).filter(incident=incident, status=Outreach.Status.SENT)
    assert notified.count() == 5  # c1..c5, c1 and c2 once each
    assert "Saved: 3 newly affected customers notified." in client.get(response["Location"]).content.decode()
    assert AuditLog.objects.filter(tenant=world, action="incident.update").count() == 1


def test_a_suspected_incident_is_edited_without_notifying_and_a_resolved_one_is_not(world):
    started = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    notice, follow_up = default_notice("error.sync_failed")
    incident = Incident.objects.create(
        tenant=world,
        component="error.sync_failed",
        title="Spike in error.sync_failed",
        affected=affected_condition("error.sync_failed", started, None),
        notice=notice,
        follow_up=follow_up,
        status=Incident.Status.SUSPECTED,
        detection={
            "signal": "error.sync_failed",
            "segment": None,
            "started_at": started.isoformat(),
            "detected_at": timezone.now().isoformat(),
            "customers_affected": 5,
            "expected": 0.1,
            "observed": 2.0,
            "p_value": 1e-6,
        },
        monitored_signal="error.sync_failed",
    )
    client = client_for(world, Membership.Role.ADMIN)
    form = client.get(f"/t/acme/incidents/{incident.pk}/edit/").content.decode()
    # The detector's condition is drawn in the picker: a count since the spike began.
    assert 'value="count_since" selected' in form and f'value="{started:%Y-%m-%dT%H:%M}"' in form
    assert 'id="follow_up_on" name="follow_up_on" checked' in form
    response = client.post(
        f"/t/acme/incidents/{incident.pk}/edit/",
        incident_form(
            **{"since-r.0": f"{started:%Y-%m-%dT%H:%M}", "follow_up_on": "on", "fu_title": "Fixed"}
        ),
    )
    incident.refresh_from_db()
    assert response.status_code == 302 and incident.status == Incident.Status.SUSPECTED
    assert not Outreach.objects.for_tenant(world).filter(incident=incident).exists()
    detail = client.get(response["Location"]).content.decode()
    # Its customers now come from the edited condition: pro customers with a hit since the spike.
    assert "Confirm and notify 2 customers" in detail
    Incident.objects.for_tenant(world).filter(pk=incident.pk).update(status=Incident.Status.DISMISSED)
    refused = client.post(f"/t/acme/incidents/{incident.pk}/edit/", incident_form())
    assert refused.status_code == 302
    incident.refresh_from_db()
    assert incident.title == "Bank sync failing" and incident.status == Incident.Status.DISMISSED
    assert "can no longer be changed" in client.get(refused["Location"]).content.decode()
