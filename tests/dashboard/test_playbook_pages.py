"""Playbook and campaign pages: counts, reasons, effect with its interval, warnings, backtest."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import Membership
from campaigns.effectiveness import effectiveness
from campaigns.outcomes import outcomes_sweep
from tests.dashboard.pages_world import build_pages_world
from tests.dashboard.test_pages import ROLES, chart_specs, client_for
from tests.factories import PlaybookFactory, UserFactory


@pytest.fixture(autouse=True)
def no_page_cache(monkeypatch):
    """Pages keep aggregates for minutes; here every request reads its own rows (a shared
    Redis is never flushed: other suites use it too)."""
    monkeypatch.setattr("dashboard.selectors.PAGE_CACHE_SECONDS", 0)


def source_pages(world) -> dict[str, int]:
    return {
        "/t/acme/playbooks/": 7,
        f"/t/acme/playbooks/{world.playbook.pk}/": 14,
        f"/t/acme/playbooks/{world.harmful.pk}/": 14,
        "/t/acme/campaigns/": 7,
        f"/t/acme/campaigns/{world.campaign.pk}/": 14,
    }


@pytest.mark.parametrize("role", ROLES)
def test_lists_render_empty_with_a_next_step(tenant, role):
    client = client_for(tenant, role)
    assert b"No playbooks yet" in client.get("/t/acme/playbooks/").content
    assert b"No campaigns yet" in client.get("/t/acme/campaigns/").content


@pytest.mark.parametrize("role", ROLES)
def test_a_playbook_that_never_fired_renders_its_empty_states(tenant, role):
    playbook = PlaybookFactory(tenant=tenant)
    client = client_for(tenant, role)
    text = client.get(f"/t/acme/playbooks/{playbook.pk}/").content.decode()
    assert "never fired" in text and "Nothing rejected." in text
    assert "Not measured yet" in text and "has not run for this workspace yet" in text
    outcomes_sweep(tenant=tenant)
    text = client.get(f"/t/acme/playbooks/{playbook.pk}/").content.decode()
    assert "Not measurable yet" in text and "Contacts counted by the last outcomes sweep" in text


@pytest.mark.parametrize("role", ROLES)
def test_pages_render_with_data_within_their_query_budget(tenant, role, django_assert_max_num_queries):
    world = build_pages_world(tenant)
    client = client_for(tenant, role)
    for path, budget in source_pages(world).items():
        with django_assert_max_num_queries(budget):
            assert client.get(path).status_code == 200, path


def test_outsiders_get_404(tenant):
    world = build_pages_world(tenant, customers=4)
    outsider = Client()
    outsider.force_login(UserFactory())
    for path in [*source_pages(world), f"/t/acme/playbooks/{world.playbook.pk}/backtest/"]:
        assert outsider.get(path).status_code == 404, path


def test_the_playbook_page_matches_effectiveness_and_lists_reasons(tenant):
    world = build_pages_world(tenant)
    response = client_for(tenant, Membership.Role.VIEWER).get(f"/t/acme/playbooks/{world.playbook.pk}/")
    text = response.content.decode()
    effect = effectiveness(tenant=tenant, playbook=world.playbook, window_days=14)
    treated = effect["treated"]
    assert f"{treated['contacted']} of {treated['customers']} customers assigned to this playbook" in text
    assert "including messages agents rejected or let expire" in text
    assert f"{effect['holdout']['contacted']} of {effect['holdout']['customers']} held out" in text
    assert "contact budget: 2 per 7 days" in text
    specs = chart_specs(response)
    rates = specs["chart-rates"]["series"]
    assert rates[0]["data"] == [pytest.approx(effect["treated"]["rate"])]
    assert rates[1]["data"] == [pytest.approx(effect["holdout"]["rate"])]
    band = specs["chart-cumulative"]["series"]
    # The chart's axis runs from -100% to +100%: a bound beyond it is drawn at the edge.
    assert [band[0]["data"][-1], band[1]["data"][-1]] == [max(-1.0, min(1.0, b)) for b in effect["ci95"]]
    assert band[2]["counts"][-1] == f"{effect['relative_reduction'] * 100:+.0f}%"  # the true value
    funnel = specs["chart-funnel"]["series"][0]["data"]
    assert funnel[:2] == [effect["engagement"]["sent"], effect["engagement"]["seen"]]
    assert "looks harmful" not in text


def test_a_backfiring_playbook_and_rejecting_agents_are_flagged(tenant):
    world = build_pages_world(tenant)
    text = (
        client_for(tenant, Membership.Role.AGENT)
        .get(f"/t/acme/playbooks/{world.harmful.pk}/")
        .content.decode()
    )
    assert "This looks harmful." in text
    assert "Agents reject most of what this proposes" in text
    assert "customer is already talking to support" in text
    listing = client_for(tenant, Membership.Role.AGENT).get("/t/acme/playbooks/").content.decode()
    assert "agents reject most" in listing


def test_the_campaign_page_shows_its_audience_and_effect(tenant):
    world = build_pages_world(tenant)
    text = (
        client_for(tenant, Membership.Role.VIEWER)
        .get(f"/t/acme/campaigns/{world.campaign.pk}/")
        .content.decode()
    )
    assert "API v1 sunset" in text and "api_version" in text
    assert "Not measurable yet" in text  # no holdout in this campaign


def test_the_backtest_runs_on_request_and_is_cached(tenant, django_assert_max_num_queries):
    world = build_pages_world(tenant, customers=6)
    client = client_for(tenant, Membership.Role.VIEWER)
    page = client.get(f"/t/acme/playbooks/{world.playbook.pk}/").content.decode()
    assert f'hx-get="/t/acme/playbooks/{world.playbook.pk}/backtest/?window_days=14"' in page
    first = client.get(f"/t/acme/playbooks/{world.playbook.pk}/backtest/", HTTP_HX_REQUEST="true")
    assert first.status_code == 200 and b"contacted support" in first.content
    with django_assert_max_num_queries(5):
        again = client.get(f"/t/acme/playbooks/{world.playbook.pk}/backtest/", HTTP_HX_REQUEST="true")
    assert again.content == first.content


def test_window_days_is_clamped(tenant):
    world = build_pages_world(tenant, customers=4)
    client = client_for(tenant, Membership.Role.VIEWER)
    assert b"within 90 days" in client.get(f"/t/acme/playbooks/{world.playbook.pk}/?window_days=5000").content
    assert client.get(f"/t/acme/playbooks/{world.playbook.pk}/?window_days=abc").status_code == 200


def test_effect_sentences_never_say_minus_zero():
    from dashboard.playbook_views import effect_display

    effect = {
        "ci95": [-0.001, 0.46],
        "relative_reduction": -0.004,
        "treated": {"rate": 0.2},
        "holdout": {"rate": 0.2},
    }
    shown = effect_display(effect)
    assert shown["ci_text"] == "from 0% more to 46% fewer" and shown["change_text"] == "No clear effect yet"


@pytest.mark.parametrize(
    ("reduction", "ci", "headline", "interval"),
    [
        (0.06, [-0.2, 0.28], "No clear effect yet", "from 20% more to 28% fewer"),
        (-0.23, [-0.9, 0.2], "No clear effect yet", "from 90% more to 20% fewer"),
        (0.4, [0.1, 0.6], "40% fewer contacts", "between 10% and 60% fewer"),
        (-0.45, [-0.8, -0.1], "45% more contacts", "between 10% and 80% more"),
    ],
)
def test_a_direction_is_stated_only_when_the_interval_excludes_zero(reduction, ci, headline, interval):
    from dashboard.playbook_views import effect_display

    on_reached = {
        "absolute_reduction": 0.1,
        "relative_reduction": reduction * 2,
        "ci95": [ci[0] * 2, ci[1] * 2],
    }
    shown = effect_display(
        {
            "relative_reduction": reduction,
            "ci95": ci,
            "treated": {"rate": 0.2},
            "holdout": {"rate": 0.2},
            "reached": {"customers": 50, "share": 0.5},
            "effect_on_reached": on_reached,
        }
    )
    assert shown["change_text"] == headline and shown["ci_text"] == interval
    assert shown["on_reached"]["direction"] == shown["direction"]
    assert (shown["direction"] is None) == (headline == "No clear effect yet")
