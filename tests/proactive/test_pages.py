"""Tenant pages: every page renders empty and with data for each role, outsiders get 404,
query counts are pinned, and the figures on the page are the ones in the database."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from accounts.models import Membership
from tests.factories import CustomerFactory, MembershipFactory, UserFactory
from tests.proactive.pages_world import build_pages_world

ROLES = [Membership.Role.ADMIN, Membership.Role.AGENT, Membership.Role.VIEWER]
# path -> max queries (session, user, membership, nav memberships + the page's own).
STATIC_PAGES = {
    "/t/acme/": 14,
    "/t/acme/model/": 10,
    "/t/acme/customers/": 7,
    "/t/acme/customers/?q=person": 7,
    "/t/acme/runs/": 6,
    "/t/acme/fatigue/": 10,
}


def client_for(tenant, role) -> Client:
    client = Client()
    client.force_login(MembershipFactory(tenant=tenant, role=role).user)
    return client


def chart_specs(response) -> dict[str, dict]:
    text = response.content.decode()
    return {
        m.group(1): json.loads(m.group(2))
        for m in re.finditer(
            r'<script id="(chart-[\w-]+)" type="application/json">(.*?)</script>', text, re.S
        )
    }


def world_pages(world) -> dict[str, int]:
    return {
        **STATIC_PAGES,
        "/t/acme/customers/p000/": 12,
        f"/t/acme/runs/{world.run.pk}/": 5,
        f"/t/acme/runs/{world.running.pk}/": 5,
    }


@pytest.fixture(autouse=True)
def no_page_cache(monkeypatch):
    """Pages keep aggregates for minutes; here every request reads its own rows (a shared
    Redis is never flushed: other suites use it too)."""
    monkeypatch.setattr("proactive.selectors.PAGE_CACHE_SECONDS", 0)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path", list(STATIC_PAGES))
def test_every_page_renders_with_no_data(tenant, role, path):
    response = client_for(tenant, role).get(path)
    assert response.status_code == 200
    assert b"Traceback" not in response.content


def test_empty_pages_say_what_to_do_next(tenant):
    client = client_for(tenant, Membership.Role.VIEWER)
    assert b"No customers yet" in client.get("/t/acme/").content
    assert b"No active model yet" in client.get("/t/acme/model/").content
    assert b"No pipeline run yet" in client.get("/t/acme/runs/").content
    assert b"No messages in the last" in client.get("/t/acme/fatigue/").content
    assert b"No scored customers yet" in client.get("/t/acme/customers/").content


@pytest.mark.parametrize("role", ROLES)
def test_every_page_renders_with_data_within_its_query_budget(tenant, role, django_assert_max_num_queries):
    world = build_pages_world(tenant)
    client = client_for(tenant, role)
    for path, budget in world_pages(world).items():
        with django_assert_max_num_queries(budget):
            response = client.get(path)
        assert response.status_code == 200, path


def test_query_counts_do_not_grow_with_customers(tenant, django_assert_max_num_queries):
    world = build_pages_world(tenant, customers=10)
    client = client_for(tenant, Membership.Role.ADMIN)
    CustomerFactory.create_batch(60, tenant=tenant)
    for path, budget in world_pages(world).items():
        with django_assert_max_num_queries(budget):
            assert client.get(path).status_code == 200


def test_outsiders_get_404_on_every_page(tenant):
    world = build_pages_world(tenant, customers=4)
    outsider = Client()
    outsider.force_login(UserFactory())
    for path in world_pages(world):
        assert outsider.get(path).status_code == 404, path
    assert Client().get("/t/acme/model/").status_code == 302


def test_unknown_customer_and_run_are_404(tenant):
    client = client_for(tenant, Membership.Role.ADMIN)
    assert client.get("/t/acme/customers/nobody/").status_code == 404
    assert client.get("/t/acme/runs/999999/").status_code == 404


def test_the_overview_shows_the_pooled_effect_and_engagement(tenant):
    build_pages_world(tenant)
    response = client_for(tenant, Membership.Role.VIEWER).get("/t/acme/")
    text = response.content.decode()
    # Two playbooks pooled (the first 20 customers contact support after the outreach):
    # 30 + 20 treated of whom 15 + 20 contacted, 10 + 20 held out of whom 5 + 0 contacted.
    assert "70.0% of 50 reached vs 16.7% of 30 held out" in text
    assert "320% more" in text  # backfiring: said plainly and shown in red
    assert "95% interval" in text
    assert "chart-effect" in chart_specs(response)
    # 70 playbook and 40 campaign messages went out 30 days ago, outside the 28-day window.
    assert "0 sent to 0 of 40 customers" in text
    assert "Review queue" in text and ">1<" in text.replace(" ", "")


def test_the_model_page_plots_calibration_importance_and_drift(tenant):
    build_pages_world(tenant)
    response = client_for(tenant, Membership.Role.VIEWER).get("/t/acme/model/")
    specs = chart_specs(response)
    observed = specs["chart-calibration"]["series"][0]["data"]
    assert observed == [{"x": 0.05, "y": 0.04}, {"x": 0.3, "y": 0.33}]
    assert specs["chart-importance"]["labels"] == ["count(error.*, 3)", "days_since_signup"]
    assert sum(specs["chart-scores"]["series"][0]["data"]) == 40
    text = response.content.decode()
    assert "feature.brand_new" in text  # a signal that appeared after training
    assert "0.810" in text


def test_the_customer_page_shows_risk_reasons_signals_and_every_outreach(tenant):
    build_pages_world(tenant)
    response = client_for(tenant, Membership.Role.AGENT).get("/t/acme/customers/p001/")
    text = response.content.decode()
    assert "Person 1" in text and "count(error.*, 3)" in text
    assert "contact budget: 2 per 7 days" in text
    assert "Sync keeps failing" in text and "API v1 sunset" in text
    assert "Not helpful" in text
    specs = chart_specs(response)
    assert specs["chart-risk"]["series"][0]["data"] == [0.0125]


def test_customers_are_searchable(tenant):
    build_pages_world(tenant, customers=12)
    client = client_for(tenant, Membership.Role.VIEWER)
    found = client.get("/t/acme/customers/?q=Person 11").content.decode()
    assert "p011" in found and "p003" not in found
    assert b"No customer matches" in client.get("/t/acme/customers/?q=zzz").content
    partial = client.get("/t/acme/customers/?q=p01", HTTP_HX_REQUEST="true").content.decode()
    assert 'id="results"' in partial and "<html" not in partial


def test_a_running_run_polls_until_it_is_done(tenant):
    world = build_pages_world(tenant, customers=3)
    client = client_for(tenant, Membership.Role.VIEWER)
    running = client.get(f"/t/acme/runs/{world.running.pk}/").content.decode()
    assert 'hx-trigger="every 2s"' in running and 'max="4" value="1"' in running
    partial = client.get(f"/t/acme/runs/{world.running.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<div id="run-state"')
    assert "every 2s" in client.get("/t/acme/runs/").content.decode()
    world.running.status = "succeeded"
    world.running.save(update_fields=["status"])
    done = client.get(f"/t/acme/runs/{world.running.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "every 2s" not in done
    finished = client.get(f"/t/acme/runs/{world.run.pk}/").content.decode()
    assert "ValueError: boom" in finished and "every 2s" not in finished
    assert "every 2s" not in client.get("/t/acme/runs/").content.decode()


def test_fatigue_counts_the_budget_as_firing_does(tenant):
    build_pages_world(tenant, customers=6)
    response = client_for(tenant, Membership.Role.VIEWER).get("/t/acme/fatigue/")
    specs = chart_specs(response)
    window = specs["chart-window"]["series"][0]["data"]
    # In the last 7 days only customer p002 holds a pending review (rejected and suppressed do not count).
    assert window[:2] == [5, 1]
    assert "Person 2" in response.content.decode()


def test_expensive_aggregates_are_cached_between_requests(tenant, monkeypatch, django_assert_max_num_queries):
    monkeypatch.setattr("proactive.selectors.PAGE_CACHE_SECONDS", 60)
    build_pages_world(tenant, customers=4)
    client = client_for(tenant, Membership.Role.VIEWER)
    first = chart_specs(client.get("/t/acme/fatigue/"))
    with django_assert_max_num_queries(5):  # session, user, membership, nav: none for the figures
        assert chart_specs(client.get("/t/acme/fatigue/")) == first
