"""Tenant pages: every page renders empty and with data for each role, outsiders get 404,
query counts are pinned, and the figures on the page are the ones in the database."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Membership
from dashboard import snapshots
from dashboard.snapshots import overview_refresh
from proactive.ingest import rollups_rebuild
from proactive.models import Customer, PageSnapshot, RiskScoreDaily
from tests.dashboard.pages_world import build_pages_world
from tests.factories import CustomerFactory, MembershipFactory, OutreachFactory, SignalFactory, UserFactory

ROLES = [Membership.Role.ADMIN, Membership.Role.AGENT, Membership.Role.VIEWER]
# path -> max queries (session, user, membership, nav memberships + the page's own).
STATIC_PAGES = {
    "/t/acme/": 8,
    "/t/acme/model/": 10,
    # the page (1, or 2 where the scored customers run out), how many match and the plan filter's
    # values (both cached for minutes outside tests)
    "/t/acme/customers/": 9,
    "/t/acme/customers/?q=person": 9,
    "/t/acme/customers/?band=high&plan=pro&pending=1&q=person": 9,
    "/t/acme/customers/?band=none": 8,
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
    monkeypatch.setattr("dashboard.selectors.PAGE_CACHE_SECONDS", 0)


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
    # Two playbooks, each against its own holdout (the first 20 customers contact support after
    # the outreach): 30 treated of whom 15 contacted vs 10 held out of whom 5 (no effect), and
    # 20 of 20 vs 0 of 20. Mantel-Haenszel: RR = (15*10/40 + 20*20/40) / (5*30/40) = 3.667.
    # (The raw pooled rates, 70% vs 16.7%, would say 320% more: they mix the playbooks.)
    assert "30 held out; each playbook compared with its own holdout" in text
    assert "267% more" in text  # backfiring: said plainly and shown in red
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
    assert specs["chart-importance"]["labels"] == ["errors in the last 3 days", "days since sign-up"]
    assert sum(specs["chart-scores"]["series"][0]["data"]) == 40
    text = response.content.decode()
    assert "feature.brand_new" in text  # a signal that appeared after training
    assert "0.810" in text
    # The same run's baselines, on the same validation rows.
    assert "Compared with simple baselines" in text
    assert "BG/NBD recency-frequency model" in text and "0.736" in text
    assert "XGBoost on windowed counts only" in text and "0.772" in text


def test_the_customer_page_shows_risk_reasons_signals_and_every_outreach(tenant):
    build_pages_world(tenant)
    response = client_for(tenant, Membership.Role.AGENT).get("/t/acme/customers/p001/")
    text = response.content.decode()
    assert "Person 1" in text and "errors in the last 3 days" in text
    assert "under 1 point of risk" in text  # +0.4 log-odds at a risk of 1.25%
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
    monkeypatch.setattr("dashboard.selectors.PAGE_CACHE_SECONDS", 60)
    build_pages_world(tenant, customers=4)
    client = client_for(tenant, Membership.Role.VIEWER)
    first = chart_specs(client.get("/t/acme/fatigue/"))
    with django_assert_max_num_queries(5):  # session, user, membership, nav: none for the figures
        assert chart_specs(client.get("/t/acme/fatigue/")) == first


def test_the_overview_reads_what_the_pipeline_stored_and_says_how_old_it_is(tenant):
    world = build_pages_world(tenant, customers=8)
    client = client_for(tenant, Membership.Role.VIEWER)
    assert "0 sent to 0 of 8 customers" in client.get("/t/acme/").content.decode()
    person = Customer.objects.for_tenant(tenant).get(external_id="p000")
    OutreachFactory(
        tenant=tenant, customer=person, playbook=world.playbook, status="sent", sent_at=timezone.now()
    )
    text = client.get("/t/acme/").content.decode()
    assert "0 sent to 0 of 8 customers" in text  # as of the last run, and it says so
    assert 'Figures are computed by every pipeline run: these are <time class="as-of"' in text
    overview_refresh(tenant=tenant)  # the pipeline's "pages" step
    assert "1 sent to 1 of 8 customers" in client.get("/t/acme/").content.decode()

    # No worker for two scoring intervals: the page computes the figures itself.
    OutreachFactory(
        tenant=tenant, customer=person, playbook=world.harmful, status="sent", sent_at=timezone.now()
    )
    stale = timezone.now() - timedelta(minutes=2 * tenant.scoring_interval_minutes + 1)
    PageSnapshot.objects.for_tenant(tenant).update(computed_at=stale)
    assert "2 sent to 1 of 8 customers" in client.get("/t/acme/").content.decode()
    assert PageSnapshot.objects.for_tenant(tenant).get().computed_at > stale


def test_a_tenant_without_a_snapshot_gets_one_on_its_first_visit(tenant, django_assert_max_num_queries):
    client = client_for(tenant, Membership.Role.VIEWER)
    assert not PageSnapshot.objects.for_tenant(tenant).exists()
    assert client.get("/t/acme/").status_code == 200
    assert PageSnapshot.objects.for_tenant(tenant).filter(name="overview").exists()
    with django_assert_max_num_queries(STATIC_PAGES["/t/acme/"]):
        assert client.get("/t/acme/").status_code == 200


def test_a_snapshot_of_another_shape_is_recomputed_not_misread(tenant):
    build_pages_world(tenant, customers=4)
    PageSnapshot.objects.for_tenant(tenant).update(data={"version": 0, "engagement": {"old": 1}})
    assert client_for(tenant, Membership.Role.VIEWER).get("/t/acme/").status_code == 200
    assert PageSnapshot.objects.for_tenant(tenant).get().data["version"] == snapshots.VERSION


def test_the_risk_chart_starts_when_the_customer_signed_up(tenant):
    """Backfilled scoring runs as of earlier days scored a customer who signed up later: the
    chart draws nothing before the sign-up day."""
    today = timezone.localdate()
    late = CustomerFactory(
        tenant=tenant, external_id="late", signed_up_at=timezone.now() - timedelta(days=3, hours=1)
    )
    unknown = CustomerFactory(tenant=tenant, external_id="nodate", signed_up_at=None)
    for customer in (late, unknown):
        for back in (20, 10, 5, 3, 1):
            RiskScoreDaily.objects.create(
                tenant=tenant, customer=customer, day=today - timedelta(days=back), score=back / 100
            )
    client = client_for(tenant, Membership.Role.VIEWER)
    response = client.get("/t/acme/customers/late/")
    signed_up = timezone.localtime(late.signed_up_at).date()
    risk = chart_specs(response)["chart-risk"]
    assert risk["labels"] == [(today - timedelta(days=b)).strftime("%d %b") for b in (3, 1)]
    assert risk["series"][0]["data"] == [0.03, 0.01]
    assert f"Risk since sign-up on {signed_up:%-d %b %Y}" in response.content.decode()
    # No sign-up date: from its creation here (today), or its first signal when earlier.
    fresh = client.get("/t/acme/customers/nodate/")
    assert "chart-risk" not in chart_specs(fresh) and "No daily scores yet." in fresh.content.decode()
    SignalFactory(
        tenant=tenant, customer=unknown, name="session.started", timestamp=timezone.now() - timedelta(days=6)
    )
    rollups_rebuild(tenant_id=tenant.pk)
    nodate = client.get("/t/acme/customers/nodate/")
    assert chart_specs(nodate)["chart-risk"]["series"][0]["data"] == [0.05, 0.03, 0.01]
    assert "Risk since the first sight of this customer on" in nodate.content.decode()
