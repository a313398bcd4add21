"""Insights through the pipeline, the API and the page: a disabled playbook from an insight whose
preview matches the insight's "customers matching now"."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from unittest import mock

import pytest
from django.core.management import call_command

from accounts.models import Membership
from campaigns.models import Playbook
from demo.data import generate_demo_data
from proactive.models import Insight, InsightRun, PipelineRun
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

END = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture
def trained(tenant):
    generate_demo_data(tenant=tenant, customers=1500, days=110, seed=4, end=END)
    out = io.StringIO()
    call_command("run_pipeline", tenant=tenant.slug, as_of=END.isoformat(), train=True, stdout=out)
    return json.loads(out.getvalue())


def post(api, url, data=None):
    return api.post(url, data=json.dumps(data or {}), content_type="application/json")


def test_a_training_run_records_the_insights_step_with_timings(tenant, trained):
    step = next(s for s in trained["steps"] if s["name"] == "insights")
    assert step["status"] == "ok", step
    assert step["seconds"] > 0
    assert set(step["counts"]["seconds"]) >= {"snapshots", "singles", "pairs", "validation", "matching_now"}
    run = InsightRun.objects.for_tenant(tenant).get()
    assert run.pipeline_run_id == trained["run"]
    assert run.stats["snapshots"] == "reused"  # the train step's pass computed the insights' features
    assert step["counts"]["insights"] == Insight.objects.for_tenant(tenant).count() > 0


def test_a_scoring_run_leaves_the_insights_alone(tenant, trained):
    call_command("run_pipeline", tenant=tenant.slug, as_of=END.isoformat(), stdout=io.StringIO())
    assert InsightRun.objects.for_tenant(tenant).count() == 1
    score_run = PipelineRun.objects.for_tenant(tenant).filter(kind="score").get()
    assert "insights" not in [s["name"] for s in score_run.steps]


def test_the_api_lists_insights_strongest_first(tenant, trained, api):
    body = api.get("/api/v1/insights").json()
    assert set(body) == {"as_of", "target", "horizon_days", "base_rate", "results"}
    assert body["target"] == "contact" and body["horizon_days"] == 14
    assert datetime.fromisoformat(body["as_of"]) == END
    assert body["results"]
    first = body["results"][0]
    assert set(first) == {"id", "condition", "text", "customers", "rate", "lift", "ci95", "q_value"}
    assert all(r["q_value"] <= 0.05 and r["ci95"][0] <= r["lift"] <= r["ci95"][1] for r in body["results"])
    lows = [r["ci95"][0] for r in body["results"]]
    assert lows == sorted(lows, reverse=True)
    assert first["lift"] == pytest.approx(first["rate"] / body["base_rate"])
    assert f"{first['customers']:,} customer" in first["text"]


def test_a_playbook_from_an_insight_is_disabled_and_previews_the_insights_customers(tenant, trained, api):
    insights = api.get("/api/v1/insights").json()["results"]
    for insight in insights:
        response = post(api, f"/api/v1/insights/{insight['id']}/playbook")
        assert response.status_code == 201, response.content
        created = response.json()
        assert created["enabled"] is False
        assert created["trigger"] == insight["condition"]
        with mock.patch("django.utils.timezone.now", return_value=END):
            preview = post(api, f"/api/v1/playbooks/{created['id']}/preview").json()
        assert preview["matching"] == insight["customers"], insight["condition"]
    assert Playbook.objects.for_tenant(tenant).filter(enabled=False).count() == len(insights)


@pytest.mark.parametrize(
    ("kind", "title"),
    [("errors", "Running into errors"), ("onboarding", "finishing your setup"), ("decline", "in your way")],
)
def test_the_message_suits_the_kind_of_pattern(tenant, trained, api, kind, title):
    insight = Insight.objects.for_tenant(tenant).first()
    Insight.objects.for_tenant(tenant).filter(pk=insight.pk).update(kind=kind)
    created = post(api, f"/api/v1/insights/{insight.pk}/playbook").json()
    assert title in created["action"]["title"]


def test_a_name_and_action_may_be_given_and_are_validated(tenant, trained, api):
    insight = Insight.objects.for_tenant(tenant).first()
    action = {"channel": "in_app", "title": "Sync trouble?", "body": "Hi {{ customer.name }}"}
    created = post(api, f"/api/v1/insights/{insight.pk}/playbook", {"name": "Mine", "action": action})
    assert created.status_code == 201 and created.json()["name"] == "Mine"
    assert created.json()["action"]["title"] == "Sync trouble?"
    again = post(api, f"/api/v1/insights/{insight.pk}/playbook", {"name": "Mine"})
    assert again.status_code == 400
    bad = post(api, f"/api/v1/insights/{insight.pk}/playbook", {"action": {"title": ""}})
    assert bad.status_code == 400 and "action" in bad.json()
    twice = [post(api, f"/api/v1/insights/{insight.pk}/playbook").json()["name"] for _ in range(2)]
    assert twice[0] != twice[1]


def test_an_insight_of_another_tenant_is_not_found(trained, api, other_tenant_insight):
    assert post(api, f"/api/v1/insights/{other_tenant_insight.pk}/playbook").status_code == 404


@pytest.fixture
def other_tenant_insight():
    from tests.factories import TenantFactory

    other = TenantFactory(slug="other")
    run = InsightRun.objects.create(
        tenant=other, as_of=END, status="computed", target="contact", horizon_days=14
    )
    return Insight.objects.create(
        tenant=other,
        insight_run=run,
        rank=1,
        kind="generic",
        condition={"metric": "days_since_signup", "op": "gte", "value": 1},
        text="x",
        customers_now=1,
        rate=0.2,
        base_rate=0.1,
        lift=2,
        ci_low=1.5,
        ci_high=2.5,
        p_value=0.001,
        q_value=0.01,
        rows=10,
        reached=2,
    )


def test_the_page_lists_insights_and_creates_a_disabled_playbook(tenant, trained, client):
    admin = MembershipFactory(tenant=tenant, role=Membership.Role.ADMIN).user
    client.force_login(admin)
    page = client.get(f"/t/{tenant.slug}/insights/")
    assert page.status_code == 200
    insight = Insight.objects.for_tenant(tenant).order_by("rank").first()
    assert f"{insight.customers_now}</strong> match now" in page.content.decode()
    response = client.post(f"/t/{tenant.slug}/insights/{insight.pk}/playbook/")
    playbook = Playbook.objects.for_tenant(tenant).get()
    assert response.status_code == 302 and str(playbook.pk) in response["Location"]
    assert playbook.enabled is False and playbook.trigger == insight.condition


def test_viewers_see_the_page_without_the_button(tenant, trained, client):
    viewer = MembershipFactory(tenant=tenant, role=Membership.Role.VIEWER).user
    client.force_login(viewer)
    page = client.get(f"/t/{tenant.slug}/insights/").content.decode()
    assert "match now" in page and "Create a disabled" not in page
    insight = Insight.objects.for_tenant(tenant).first()
    assert client.post(f"/t/{tenant.slug}/insights/{insight.pk}/playbook/").status_code == 403


@pytest.mark.parametrize(
    ("setup", "text"),
    [
        (None, "No insights yet"),
        (
            {"status": "insufficient_data", "reason": "not enough data: 3 of 90 earlier rows"},
            "Not enough data yet",
        ),
        ({"status": "computed", "stats": {"tried": 812}}, "none of the 812 conditions tried"),
    ],
)
def test_the_page_says_when_there_is_nothing_to_show(tenant, client, setup, text):
    admin = MembershipFactory(tenant=tenant, role=Membership.Role.ADMIN).user
    client.force_login(admin)
    if setup is not None:
        InsightRun.objects.create(tenant=tenant, as_of=END, target="contact", horizon_days=14, **setup)
    assert text in client.get(f"/t/{tenant.slug}/insights/").content.decode()
