"""Playbook and campaign builders: the form's tree, the live panel, saving with the API's rules."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Membership
from campaigns.models import Campaign, Playbook
from proactive.ingest import rollups_rebuild
from proactive.models import PipelineRun
from tests.dashboard.test_pages import client_for
from tests.factories import CustomerFactory, SignalFactory

NESTED = {
    "node": ["r", "r.0", "r.1", "r.1.0", "r.1.1"],
    "type-r": "all",
    "type-r.0": "leaf",
    "measure-r.0": "count",
    "signal-r.0": "error.*",
    "days-r.0": "7",
    "op-r.0": "gte",
    "value-r.0": "2",
    "type-r.1": "any",
    "type-r.1.0": "leaf",
    "measure-r.1.0": "attribute",
    "attr-r.1.0": "plan",
    "op-r.1.0": "eq",
    "value-r.1.0": "pro",
    "type-r.1.1": "leaf",
    "measure-r.1.1": "days_since_signup",
    "op-r.1.1": "lt",
    "value-r.1.1": "30",
}
EXPECTED = {
    "all": [
        {"metric": "count(error.*, 7)", "op": "gte", "value": 2},
        {
            "any": [
                {"metric": "attribute.plan", "op": "eq", "value": "pro"},
                {"metric": "days_since_signup", "op": "lt", "value": 30},
            ]
        },
    ]
}


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


def test_only_admins_open_the_builders(world):
    for role, status in [
        (Membership.Role.ADMIN, 200),
        (Membership.Role.AGENT, 403),
        (Membership.Role.VIEWER, 403),
    ]:
        client = client_for(world, role)
        assert client.get("/t/acme/playbooks/new/").status_code == status
        assert client.get("/t/acme/campaigns/new/").status_code == status


def test_the_tree_grows_a_nested_group_from_the_buttons(world):
    client = client_for(world, Membership.Role.ADMIN)
    form = {k: v for k, v in NESTED.items() if not k.endswith(("r.1", "r.1.0", "r.1.1"))}
    form["node"] = ["r", "r.0"]
    html = client.post("/t/acme/builder/tree/", {**form, "op": "add_any:r"}).content.decode()
    assert 'name="type-r.1"' in html and 'value="any" selected' in html and 'name="measure-r.1.0"' in html
    assert "error.sync_failed" in html  # the picker lists the tenant's signals


def test_the_panel_counts_matches_and_flags_unknown_names(world):
    client = client_for(world, Membership.Role.ADMIN)
    panel = client.post(
        "/t/acme/builder/panel/", {**NESTED, "title": "Hi {{ customer.first_name }}"}
    ).content.decode()
    # errors >= 2 (c2..c5) AND (plan pro (c0..c2) OR signed up < 30 days ago (none)): c2 only
    assert '<strong id="match-count">1</strong> of 6' in panel
    assert "Cust 2" in panel and "Hi Cust" in panel  # the message previewed for the sample customer
    assert "at least 2 error.* signals in the last 7 days" in panel
    unknown = client.post("/t/acme/builder/panel/", {**NESTED, "signal-r.0": "eror.*"}).content.decode()
    assert "no signal “eror.*” has ever been received" in unknown


def test_saving_builds_the_condition_json_and_uses_the_apis_rules(world):
    client = client_for(world, Membership.Role.ADMIN)
    form = {**NESTED, "name": "Errors on pro", "title": "Need a hand?", "body": "Hi", "cooldown_days": "14"}
    bad = client.post("/t/acme/playbooks/new/", {**form, "holdout_percent": "80"})
    assert bad.status_code == 400 and "holdout_percent" in bad.content.decode()
    assert not Playbook.objects.for_tenant(world).exists()
    saved = client.post("/t/acme/playbooks/new/", {**form, "holdout_percent": "10", "enabled": "on"})
    playbook = Playbook.objects.for_tenant(world).get()
    assert saved.status_code == 302 and playbook.trigger == EXPECTED and playbook.enabled
    assert playbook.action["title"] == "Need a hand?"
    edit = client.get(f"/t/acme/playbooks/{playbook.pk}/edit/").content.decode()
    assert 'name="type-r.1"' in edit and 'value="pro"' in edit
    again = client.post("/t/acme/playbooks/new/", {**form, "holdout_percent": "10"})
    assert again.status_code == 400 and "a playbook with this name exists" in again.content.decode()


def test_a_campaign_is_scheduled_from_its_builder(world):
    client = client_for(world, Membership.Role.ADMIN)
    form = {
        **NESTED,
        "name": "Pro notice",
        "title": "News",
        "body": "b",
        "holdout_percent": "0",
        "when": "now",
    }
    response = client.post("/t/acme/campaigns/new/", form)
    campaign = Campaign.objects.for_tenant(world).get()
    assert (
        response.status_code == 302 and campaign.audience == EXPECTED and campaign.send_at <= timezone.now()
    )


def test_run_now_queues_one_run_for_a_double_click(world, django_capture_on_commit_callbacks):
    client = client_for(world, Membership.Role.ADMIN)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/t/acme/runs/now/")
    assert response.status_code == 302 and response["Location"] == "/t/acme/runs/"
    run = PipelineRun.objects.for_tenant(world).get()
    assert run.trigger == "manual" and run.status == "succeeded"
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/t/acme/runs/now/")
    assert PipelineRun.objects.for_tenant(world).count() == 1
    assert client_for(world, Membership.Role.AGENT).post("/t/acme/runs/now/").status_code == 403
