"""Every tenant page in Debian's Chromium: charts really draw, no script errors, and a
full-page screenshot of each (with data and empty) lands in test-artifacts/ for people to look at."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.utils import timezone

from accounts.models import Membership
from campaigns.models import Outreach
from proactive.models import Customer
from tests.campaigns.test_browser import ARGS, CHROMIUM  # one launch recipe for every browser test
from tests.dashboard.pages_world import build_pages_world
from tests.factories import MembershipFactory, OutreachFactory, TenantFactory

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing: run `make browser`"),
]


@pytest.fixture
def page(monkeypatch, live_server, transactional_db):
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    monkeypatch.setattr("dashboard.selectors.PAGE_CACHE_SECONDS", 0)
    tenant = TenantFactory(slug="acme", name="Acme")
    empty = TenantFactory(slug="empty", name="Empty Inc.")
    membership = MembershipFactory(tenant=tenant, role=Membership.Role.ADMIN, user__email="ann@acme.test")
    MembershipFactory(tenant=empty, user=membership.user, role=Membership.Role.VIEWER)
    world = build_pages_world(tenant)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        tab = browser.new_page(viewport={"width": 1366, "height": 860})
        tab.goto(f"{live_server.url}/login/")
        tab.fill("input[name=username]", "ann@acme.test")
        tab.fill("input[name=password]", "pw")
        tab.click("button[type=submit]")
        tab.wait_for_load_state("load")
        tab.world = world
        yield tab
        browser.close()


def test_every_page_draws_its_charts_and_is_screenshotted(page, live_server):
    """At a laptop's width and a phone's: every chart draws, nothing is wider than the screen
    but tables (which scroll inside their card), and a screenshot of each for people to look at."""
    world = page.world
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    too_wide: list[str] = []
    ARTIFACTS.mkdir(exist_ok=True)
    item = OutreachFactory(
        tenant=world.playbook.tenant,
        customer=Customer.objects.for_tenant(world.playbook.tenant).get(external_id="p001"),
        playbook=world.playbook,
        status=Outreach.Status.PENDING_REVIEW,
        triggered_at=timezone.now(),
    )
    pages = {
        "overview": "/t/acme/",
        "playbooks": "/t/acme/playbooks/",
        "playbook": f"/t/acme/playbooks/{world.playbook.pk}/",
        "playbook-harmful": f"/t/acme/playbooks/{world.harmful.pk}/",
        "playbook-new": "/t/acme/playbooks/new/",
        "campaigns": "/t/acme/campaigns/",
        "campaign": f"/t/acme/campaigns/{world.campaign.pk}/",
        "campaign-new": "/t/acme/campaigns/new/",
        "incidents": "/t/acme/incidents/",
        "incident-new": "/t/acme/incidents/new/",
        "insights": "/t/acme/insights/",
        "model": "/t/acme/model/",
        "customers": "/t/acme/customers/",
        "customer": "/t/acme/customers/p001/",
        "queue": "/t/acme/queue/",
        "queue-item": f"/t/acme/queue/{item.pk}/",
        "runs": "/t/acme/runs/",
        "run": f"/t/acme/runs/{world.run.pk}/",
        "fatigue": "/t/acme/fatigue/",
        "keys": "/t/acme/keys/",
        "webhooks": "/t/acme/webhooks/",
        "empty-overview": "/t/empty/",
        "empty-model": "/t/empty/model/",
        "empty-fatigue": "/t/empty/fatigue/",
        "empty-runs": "/t/empty/runs/",
        "empty-playbooks": "/t/empty/playbooks/",
    }
    for width in (1366, 390):
        page.set_viewport_size({"width": width, "height": 860})
        for name, path in pages.items():
            response = page.goto(live_server.url + path)
            assert response is not None and response.status == 200, (name, response and response.status)
            page.wait_for_load_state("load")
            canvases = page.locator("canvas[data-chart]").count()
            if canvases:
                drawn = page.evaluate(
                    "() => [...document.querySelectorAll('canvas[data-chart]')]"
                    ".filter(c => Chart.getChart(c)).length"
                )
                assert drawn == canvases, f"{name} at {width}px: {drawn} of {canvases} charts drawn"
            overflow = page.evaluate(
                "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            if overflow > 1:
                too_wide.append(f"{name} at {width}px is {overflow}px wider than the screen")
            page.screenshot(path=str(ARTIFACTS / f"pages-{name}-{width}.png"), full_page=True)
    assert not too_wide, too_wide
    assert not errors, errors


def test_a_running_run_updates_itself_and_stops_polling(page, live_server):
    run = page.world.running
    page.goto(f"{live_server.url}/t/acme/runs/{run.pk}/")
    assert page.locator("progress").count() == 1
    run.status = "succeeded"
    run.progress = {}
    run.save(update_fields=["status", "progress"])
    page.wait_for_selector("text=succeeded", timeout=10_000)
    assert page.locator("progress").count() == 0
    assert page.locator("[hx-trigger='every 2s']").count() == 0
