"""The Customers page in Chromium: filters update the table through htmx and the URL, the pager
walks on, and screenshots at desktop and phone widths land in test-artifacts/."""

from __future__ import annotations

import os

import pytest
from django.utils import timezone

from accounts.models import Membership
from proactive.models import RiskScore
from tests.dashboard.test_pages_browser import ARGS, ARTIFACTS, CHROMIUM
from tests.factories import CustomerFactory, MembershipFactory, OutreachFactory, TenantFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing: run `make browser`"),
]


@pytest.fixture
def browser_page(monkeypatch, live_server, transactional_db):
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    monkeypatch.setattr("dashboard.selectors.PAGE_CACHE_SECONDS", 0)
    tenant = TenantFactory(slug="acme", name="Acme")
    MembershipFactory(tenant=tenant, role=Membership.Role.ADMIN, user__email="ann@acme.test")
    now = timezone.now()
    for i in range(70):
        c = CustomerFactory(
            tenant=tenant,
            external_id=f"acct-{i:04d}",
            name=f"Customer {i}",
            attributes={"plan": ["pro", "starter", "enterprise"][i % 3]},
        )
        if i % 6:
            RiskScore.objects.create(tenant=tenant, customer=c, score=(i * 37 % 100) / 100, scored_at=now)
        if i % 7 == 0:
            OutreachFactory(customer=c)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        tab = browser.new_page(viewport={"width": 1366, "height": 860})
        tab.goto(f"{live_server.url}/login/")
        tab.fill("input[name=username]", "ann@acme.test")
        tab.fill("input[name=password]", "pw")
        tab.click("button[type=submit]")
        tab.wait_for_load_state("load")
        yield tab
        browser.close()


def test_filters_and_paging_in_the_browser(browser_page, live_server):
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    ARTIFACTS.mkdir(exist_ok=True)
    page.goto(f"{live_server.url}/t/acme/customers/")
    assert page.locator("#results tbody tr").count() == 50
    page.screenshot(path=str(ARTIFACTS / "customers-1366.png"), full_page=True)

    page.select_option("select[name=band]", "high")
    page.wait_for_url("**band=high**")
    page.select_option("select[name=plan]", "pro")
    page.wait_for_url("**plan=pro**")
    page.wait_for_selector("#match-summary:has-text('match')")
    rows = page.locator("#results tbody tr")
    assert 0 < rows.count() < 50
    page.screenshot(path=str(ARTIFACTS / "customers-filtered-1366.png"), full_page=True)

    page.check("input[name=pending]")
    page.wait_for_url("**pending=1**")
    page.fill("input[name=q]", "no such customer")
    page.wait_for_selector("text=No customers match these filters")
    page.screenshot(path=str(ARTIFACTS / "customers-empty-1366.png"), full_page=True)
    page.click("text=Clear filters")
    page.wait_for_load_state("load")
    assert page.locator("#results tbody tr").count() == 50

    page.click("a[rel=next]")
    page.wait_for_url("**after=**")
    page.wait_for_selector("a[rel=prev]")
    assert page.locator("#results tbody tr").count() == 20
    page.screenshot(path=str(ARTIFACTS / "customers-page2-1366.png"), full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/t/acme/customers/?band=medium")
    page.screenshot(path=str(ARTIFACTS / "customers-390.png"), full_page=True)
    assert not errors, errors
