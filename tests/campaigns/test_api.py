from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.conditions import MAX_DEPTH
from campaigns.firing import playbooks_evaluate
from campaigns.models import Outreach, Playbook
from tests.campaigns.helpers import add_signals, make_customers
from tests.factories import ACTION, CampaignFactory, IncidentFactory, OutreachFactory, PlaybookFactory

ONBOARDING = {
    "name": "Stuck in onboarding",
    "enabled": True,
    "trigger": {
        "all": [
            {"metric": "days_since_signup", "op": "gte", "value": 3},
            {"metric": "days_since_signup", "op": "lte", "value": 21},
            {"metric": "count(onboarding.step_completed, 365)", "op": "lt", "value": 3},
        ]
    },
    "action": {
        "channel": "in_app",
        "title": "Need a hand with setup?",
        "body": "Hi {{ customer.name }}, ... (Markdown)",
        "cta_label": "Open the guide",
        "cta_url": "https://example.com/guide",
        "requires_review": False,
        "priority": "normal",
    },
    "cooldown_days": 14,
    "holdout_percent": 10,
}


def post(api, url, data):
    return api.post(url, data=json.dumps(data), content_type="application/json")


def patch(api, url, data):
    return api.patch(url, data=json.dumps(data), content_type="application/json")


def test_it_creates_reads_updates_and_deletes_a_playbook(api, tenant):
    created = post(api, "/api/v1/playbooks", ONBOARDING)
    assert created.status_code == 201, created.content
    body = created.json()
    playbook = Playbook.objects.for_tenant(tenant).get()
    assert body["id"] == str(playbook.pk)
    assert body["trigger_text"].startswith("signed up 3-21 days ago AND fewer than 3")
    assert api.get(f"/api/v1/playbooks/{playbook.pk}").json()["name"] == "Stuck in onboarding"
    listed = api.get("/api/v1/playbooks").json()
    assert [p["id"] for p in listed["results"]] == [str(playbook.pk)]
    assert listed["next"] is None
    changed = patch(api, f"/api/v1/playbooks/{playbook.pk}", {"enabled": False, "holdout_percent": 20})
    assert changed.status_code == 200
    playbook.refresh_from_db()
    assert (playbook.enabled, playbook.holdout_percent, playbook.cooldown_days) == (False, 20, 14)
    assert api.delete(f"/api/v1/playbooks/{playbook.pk}").status_code == 204
    assert not Playbook.objects.for_tenant(tenant).exists()


@pytest.mark.parametrize(
    ("change", "field", "names"),
    [
        (
            {
                "trigger": {
                    "all": [
                        {"metric": "days_since_signup", "op": "gte", "value": 3},
                        {"metric": "days_since_signup", "op": "lte", "value": 21},
                        {"metric": "count(onboarding.step_completed)", "op": "lt", "value": 3},
                    ]
                }
            },
            "trigger",
            "trigger.all[2].metric: ",
        ),
        (
            {"trigger": {"any": [{"metric": "risk_score", "op": "approx", "value": 1}]}},
            "trigger",
            "trigger.any[0].op: ",
        ),
        ({"action": {**ONBOARDING["action"], "priority": "asap"}}, "action", "action.priority: "),
        ({"action": {**ONBOARDING["action"], "title": ""}}, "action", "action.title: "),
        (
            {"action": {**ONBOARDING["action"], "cta_url": "javascript:alert(1)"}},
            "action",
            "action.cta_url: ",
        ),
        ({"action": {**ONBOARDING["action"], "body": "{{ customer.password }}"}}, "action", "action.body: "),
        ({"holdout_percent": 90}, "holdout_percent", ""),
    ],
)
def test_an_invalid_playbook_is_a_400_naming_the_bad_part(api, tenant, change, field, names):
    response = post(api, "/api/v1/playbooks", {**ONBOARDING, **change})
    assert response.status_code == 400
    assert response.json()[field][0].startswith(names)
    playbook = PlaybookFactory(tenant=tenant)
    response = patch(api, f"/api/v1/playbooks/{playbook.pk}", change)
    assert response.status_code == 400
    assert response.json()[field][0].startswith(names)


def test_another_tenants_playbook_is_a_404(api):
    other = PlaybookFactory()
    assert api.get(f"/api/v1/playbooks/{other.pk}").status_code == 404
    assert api.post(f"/api/v1/playbooks/{other.pk}/preview").status_code == 404


def test_preview_counts_matching_customers_now(api, tenant):
    customers = make_customers(tenant, 12, signed_up_days_ago=5)
    now = timezone.now()
    for c in customers:
        c.signed_up_at = now - timedelta(days=5)
    type(customers[0]).objects.for_tenant(tenant).filter(pk__in=[c.pk for c in customers[:4]]).update(
        signed_up_at=now - timedelta(days=40)
    )
    type(customers[0]).objects.for_tenant(tenant).filter(pk__in=[c.pk for c in customers[4:]]).update(
        signed_up_at=now - timedelta(days=5)
    )
    add_signals(tenant, customers[4:6], "onboarding.step_completed", now - timedelta(hours=1), per_customer=3)
    playbook = Playbook.objects.for_tenant(tenant).get(
        pk=post(api, "/api/v1/playbooks", ONBOARDING).json()["id"]
    )
    response = api.post(f"/api/v1/playbooks/{playbook.pk}/preview")
    assert response.status_code == 200
    assert response.json() == {"matching": 6, "sample": [c.external_id for c in customers[6:]]}
    edited = {"metric": "count(onboarding.step_completed, 365)", "op": "gte", "value": 3}
    response = post(api, f"/api/v1/playbooks/{playbook.pk}/preview", {"trigger": edited})
    assert response.json()["matching"] == 2
    response = post(
        api, f"/api/v1/playbooks/{playbook.pk}/preview", {"trigger": {"metric": "x", "op": "gte"}}
    )
    assert response.status_code == 400
    assert response.json()["trigger"][0].startswith("trigger.metric: ")


def test_outreach_is_listed_with_filters(api, tenant):
    playbook = PlaybookFactory(tenant=tenant)
    sent = OutreachFactory(tenant=tenant, customer__tenant=tenant, playbook=playbook, status="sent")
    OutreachFactory(
        tenant=tenant, customer__tenant=tenant, playbook=playbook, status="held_out", holdout=True
    )
    OutreachFactory(
        tenant=tenant, customer__tenant=tenant, playbook=None, campaign=CampaignFactory(tenant=tenant)
    )
    body = api.get(f"/api/v1/outreach?playbook={playbook.pk}&status=sent").json()
    assert body["results"] == [
        {
            "id": str(sent.pk),
            "customer": sent.customer.external_id,
            "playbook": str(playbook.pk),
            "campaign": None,
            "status": "sent",
            "holdout": False,
            "triggered_at": sent.triggered_at.isoformat(),
            "sent_at": None,
            "title": sent.title,
        }
    ]
    assert len(api.get(f"/api/v1/outreach?customer={sent.customer.external_id}").json()["results"]) == 1
    assert len(api.get("/api/v1/outreach").json()["results"]) == 3
    assert api.get("/api/v1/outreach?status=bogus").status_code == 400
    assert api.get("/api/v1/outreach?playbook=nope").status_code == 400


def test_campaigns_are_created_sent_and_counted(api, tenant):
    make_customers(tenant, 20, api_version="v1")
    make_customers(tenant, 5, prefix="n", api_version="v2")
    response = post(
        api,
        "/api/v1/campaigns",
        {
            "name": "v1 sunset",
            "audience": {"metric": "attribute.api_version", "op": "eq", "value": "v1"},
            "action": ACTION,
            "send_at": (timezone.now() - timedelta(minutes=1)).isoformat(),
            "holdout_percent": 0,
        },
    )
    assert response.status_code == 201, response.content
    campaign_id = response.json()["id"]
    assert response.json()["audience_text"] == 'api_version is "v1"'
    from campaigns.campaign_sends import campaigns_send_due

    assert campaigns_send_due(tenant=tenant, as_of=timezone.now())["sent"] == 20
    detail = api.get(f"/api/v1/campaigns/{campaign_id}").json()
    assert detail["status"] == "sent"
    assert detail["audience_size"] == 20
    assert detail["counts"] == {"sent": 20}
    assert api.get("/api/v1/campaigns").json()["results"][0]["counts"] == {"sent": 20}
    eff = api.get(f"/api/v1/campaigns/{campaign_id}/effectiveness").json()
    assert eff["engagement"]["sent"] == 20


def test_a_bad_campaign_audience_is_a_400(api):
    response = post(
        api,
        "/api/v1/campaigns",
        {
            "name": "x",
            "audience": {"metric": "attribute.", "op": "eq", "value": "v1"},
            "action": ACTION,
            "send_at": timezone.now().isoformat(),
        },
    )
    assert response.status_code == 400
    assert response.json()["audience"][0].startswith("audience.metric: ")


def test_incidents_open_and_resolve_through_the_api(api, tenant):
    customers = make_customers(tenant, 6)
    add_signals(tenant, customers[:4], "error.sync_failed", timezone.now() - timedelta(hours=1))
    follow_up = {**ACTION, "title": "Sync is back"}
    response = post(
        api,
        "/api/v1/incidents",
        {
            "component": "sync",
            "title": "Sync failing",
            "notice": ACTION,
            "follow_up": follow_up,
            "affected": {"metric": "count(error.sync_*, 1)", "op": "gte", "value": 1},
        },
    )
    assert response.status_code == 201, response.content
    incident = response.json()
    assert incident["counts"] == {"sent": 4}
    resolved = api.post(f"/api/v1/incidents/{incident['id']}/resolve")
    assert resolved.status_code == 200
    assert resolved.json()["status"] == "resolved"
    assert resolved.json()["counts"] == {"sent": 8}
    assert api.post(f"/api/v1/incidents/{incident['id']}/resolve").status_code == 409
    assert Outreach.objects.for_tenant(tenant).filter(title="Sync is back").count() == 4


def test_effectiveness_counts_only_elapsed_windows(api, tenant):
    playbook = PlaybookFactory(
        tenant=tenant, holdout_percent=50, trigger={"metric": "days_since_signup", "op": "gte", "value": 0}
    )
    customers = make_customers(tenant, 200, signed_up_days_ago=40)
    t = timezone.now() - timedelta(days=20)
    playbooks_evaluate(tenant=tenant, as_of=t)
    treated = list(
        Outreach.objects.for_tenant(tenant).filter(holdout=False).values_list("customer_id", flat=True)
    )
    held = list(
        Outreach.objects.for_tenant(tenant).filter(holdout=True).values_list("customer_id", flat=True)
    )
    by_id = {c.pk: c for c in customers}
    add_signals(tenant, [by_id[i] for i in held[: len(held) // 2]], "support.contact", t + timedelta(days=3))
    add_signals(
        tenant, [by_id[i] for i in treated[: len(treated) // 4]], "support.contact", t + timedelta(days=3)
    )
    # a contact after the window is not counted
    add_signals(tenant, [by_id[i] for i in treated[-5:]], "support.contact", t + timedelta(days=15))
    body = api.get(f"/api/v1/playbooks/{playbook.pk}/effectiveness?window_days=14").json()
    assert body["treated"] == {
        "customers": len(treated),
        "contacted": len(treated) // 4,
        "rate": round((len(treated) // 4) / len(treated), 6),
    }
    assert body["holdout"]["contacted"] == len(held) // 2
    assert 0.3 < body["relative_reduction"] < 0.7
    assert body["ci95"][0] < body["relative_reduction"] < body["ci95"][1]
    assert body["p_value"] < 0.05
    assert body["engagement"]["sent"] == len(treated)
    assert set(body) >= {
        "window_days",
        "treated",
        "holdout",
        "relative_reduction",
        "ci95",
        "p_value",
        "engagement",
    }
    # a 21-day window has not elapsed for outreach triggered 20 days ago
    late = api.get(f"/api/v1/playbooks/{playbook.pk}/effectiveness?window_days=21").json()
    assert late["treated"]["customers"] == 0
    assert late["relative_reduction"] is None


# ---- the schema's grammar, enforced (issue #12) -------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/incidents", "/api/v1/outreach"])
def test_an_empty_filter_means_no_filter(api, tenant, path):
    """Clients that send every parameter of `?playbook=&campaign=&status=&customer=` and leave
    some empty get the unfiltered list, not a 400."""
    OutreachFactory(tenant=tenant)
    IncidentFactory(tenant=tenant)
    everything = api.get(path).json()["results"]
    assert everything
    empty = "?status=" if "incidents" in path else "?playbook=&campaign=&status=&customer="
    response = api.get(path + empty)
    assert response.status_code == 200
    assert response.json()["results"] == everything


@pytest.mark.parametrize(
    "url",
    ["/api/v1/outreach?status=sent&status=sent", "/api/v1/incidents?status=open&status=resolved"],
)
def test_a_repeated_filter_is_a_400(api, url):
    response = api.get(url)
    assert response.status_code == 400
    assert response.json() == {"status": ["Given more than once."]}


def test_a_repeated_window_is_a_400(api, tenant):
    campaign = CampaignFactory(tenant=tenant)
    response = api.get(f"/api/v1/campaigns/{campaign.pk}/effectiveness?window_days=7&window_days=14")
    assert response.status_code == 400
    assert response.json() == {"window_days": ["Given more than once."]}


def test_a_taken_playbook_name_is_a_409(api, tenant):
    assert post(api, "/api/v1/playbooks", ONBOARDING).status_code == 201
    response = post(api, "/api/v1/playbooks", ONBOARDING)
    assert response.status_code == 409
    assert response.json() == {"detail": "A playbook with this name exists."}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"enabled": 0}, "enabled"),
        ({"name": 7}, "name"),
        ({"cooldown_days": "14"}, "cooldown_days"),
        ({"trigger": {"metric": "count(error.*, 07)", "op": "gt", "value": 1}}, "trigger"),
        ({"trigger": {"metric": "risk_score", "op": "gt", "value": 10**16}}, "trigger"),
        ({"action": {**ONBOARDING["action"], "cta_url": "https://"}}, "action"),
        ({"action": {**ONBOARDING["action"], "priority": ["normal"]}}, "action"),
    ],
)
def test_what_the_schema_calls_invalid_is_a_400(api, tenant, change, field):
    response = post(api, "/api/v1/playbooks", {**ONBOARDING, **change})
    assert response.status_code == 400, response.content
    assert field in response.json()


def test_the_schema_publishes_the_condition_and_action_grammar(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    request = schema["components"]["schemas"]["PlaybookInputRequest"]["properties"]
    assert request["trigger"] == {"$ref": "#/components/schemas/Condition"}
    assert request["action"] == {"$ref": "#/components/schemas/Action"}
    leaf_ops = {
        op
        for branch in schema["components"]["schemas"]["Condition"]["anyOf"][3:]
        for op in branch["properties"]["op"]["enum"]
    }
    assert leaf_ops == {"lt", "lte", "gt", "gte", "eq", "neq", "in", "not_in", "exists"}
    # The nesting limit is the schema's own: the deepest level is a leaf only, one level past it
    # does not exist, and the API refuses what the schema cannot express.
    components = schema["components"]["schemas"]
    assert f"ConditionDepth{MAX_DEPTH}" in components
    assert f"ConditionDepth{MAX_DEPTH + 1}" not in components
    assert all(
        "all" not in branch["properties"] for branch in components[f"ConditionDepth{MAX_DEPTH}"]["anyOf"]
    )
    leaf: dict = {"metric": "risk_score", "op": "gte", "value": 0.5}
    for _ in range(MAX_DEPTH + 1):
        leaf = {"not": leaf}
    response = post(api, "/api/v1/playbooks", {**ONBOARDING, "trigger": leaf})
    assert response.status_code == 400
    assert "nested deeper" in str(response.json())
