"""Every tenant page in Debian's Chromium: charts really draw, no script errors, and a
full-page screenshot of each (with data and empty) lands in test-artifacts/ for people to look at."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from accounts.models import Membership
from tests.campaigns.test_browser import ARGS, CHROMIUM  # one launch recipe for every browser test
from tests.dashboard.pages_world import build_pages_world
from tests.factories import MembershipFactory, TenantFactory

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
    world = page.world
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    ARTIFACTS.mkdir(exist_ok=True)
    pages = {
        "overview": "/t/acme/",
        "playbooks": "/t/acme/playbooks/",
        "playbook": f"/t/acme/playbooks/{world.playbook.pk}/",
        "playbook-harmful": f"/t/acme/playbooks/{world.harmful.pk}/",
        "campaigns": "/t/acme/campaigns/",
        "campaign": f"/t/acme/campaigns/{world.campaign.pk}/",
        "model": "/t/acme/model/",
        "customers": "/t/acme/customers/",
        "customer": "/t/acme/customers/p001/",
        "runs": "/t/acme/runs/",
        "run": f"/t/acme/runs/{world.run.pk}/",
        "fatigue": "/t/acme/fatigue/",
        "empty-overview": "/t/empty/",
        "empty-model": "/t/empty/model/",
        "empty-fatigue": "/t/empty/fatigue/",
        "empty-runs": "/t/empty/runs/",
        "empty-playbooks": "/t/empty/playbooks/",
    }
    for name, path in pages.items():
        page.goto(live_server.url + path)
        page.wait_for_load_state("load")
        canvases = page.locator("canvas[data-chart]").count()
        if not canvases:
            page.screenshot(path=str(ARTIFACTS / f"pages-{name}.png"), full_page=True)
            continue
        drawn = page.evaluate(
            "() => [...document.querySelectorAll('canvas[data-chart]')].filter(c => Chart.getChart(c)).length"
        )
        assert drawn == canvases, f"{name}: {drawn} of {canvases} charts drawn"
        page.screenshot(path=str(ARTIFACTS / f"pages-{name}.png"), full_page=True)
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
