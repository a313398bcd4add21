"""The whole loop in Debian's Chromium: an agent reviews and sends, the customer's widget shows it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from django.utils import timezone

from accounts.models import Membership
from campaigns.models import Outreach, OutreachEvent
from tests.campaigns.inbox_fixtures import private_cache  # noqa: F401
from tests.factories import (
    CustomerFactory,
    MembershipFactory,
    OutreachFactory,
    PlaybookFactory,
    TenantFactory,
)

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
HOSTILE = '<img src=x onerror="window.__pwned=1">'

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing: run `make browser`"),
]


@pytest.fixture
def browser(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls below are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def wait_for(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def login(browser, live_server, email):
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", "pw")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page


def test_agent_sends_and_the_customer_sees_it_in_the_widget(live_server, browser, transactional_db, settings):
    settings.DEMO = True  # /demo/app/ exists only in the demo
    ARTIFACTS.mkdir(exist_ok=True)
    tenant = TenantFactory(slug="demo", name="Demo Software Inc.")
    first = MembershipFactory(tenant=tenant, role=Membership.Role.AGENT, user__email="first@demo.test").user
    second = MembershipFactory(tenant=tenant, role=Membership.Role.AGENT, user__email="second@demo.test").user
    ada = CustomerFactory(
        tenant=tenant, external_id="demo-ada", name=f"Ada Lovelace {HOSTILE}", attributes={"plan": "pro"}
    )
    playbook = PlaybookFactory(tenant=tenant, name="Sync keeps failing")
    mine = OutreachFactory(
        tenant=tenant,
        customer=ada,
        playbook=playbook,
        priority=3,
        risk_score=0.91,
        title="Bank sync trouble?",
        body="Hi {{ customer.first_name }}, we saw your bank sync fail.",
        cta_label="Reconnect",
        cta_url="https://example.com/reconnect",
        review_deadline=timezone.now() + timezone.timedelta(hours=20),
    )
    for i in range(6):
        OutreachFactory(
            tenant=tenant,
            customer=CustomerFactory(tenant=tenant, name=f"Customer {i}"),
            playbook=playbook,
            priority=i % 3,
            risk_score=0.1 * i,
            title=f"Onboarding help {i}",
        )

    agent = login(browser, live_server, first.email)
    agent.goto(f"{live_server.url}/t/demo/queue/")
    agent.wait_for_selector("#queue-list table")
    agent.screenshot(path=str(ARTIFACTS / "queue.png"), full_page=True)
    agent.click("#claim-next")
    agent.wait_for_url(f"**/t/demo/queue/{mine.pk}/")
    assert "You are working on this" in agent.inner_text("#claim-bar")

    # A second agent cannot take the first one's item: not from its page, not by "claim next".
    other = login(browser, live_server, second.email)
    other.goto(f"{live_server.url}/t/demo/queue/{mine.pk}/")
    assert "first@demo.test is working on this" in other.inner_text("#claim-bar")
    assert other.locator("#claim").count() == 0 and other.locator("#send").count() == 0
    other.goto(f"{live_server.url}/t/demo/queue/")
    other.click("#claim-next")
    other.wait_for_load_state()
    assert str(mine.pk) not in other.url
    assert Outreach.objects.for_tenant(tenant).get(pk=mine.pk).claimed_by_id == first.pk

    agent.fill("#title", "Your bank sync needs a hand")
    agent.fill("#body", "Hi {{ customer.first_name }}, **reconnect your bank** and invoices sync again.")
    agent.wait_for_function(
        "() => document.querySelector('#preview strong')?.textContent === 'reconnect your bank'"
    )
    assert "Your bank sync needs a hand" in agent.inner_text("#preview")
    agent.screenshot(path=str(ARTIFACTS / "item.png"), full_page=True)
    # Send without saving first: the editor's text is saved, then sent (it used to send the old text).
    agent.click("#send")
    agent.wait_for_url("**/t/demo/queue/")
    assert "Sent to" in agent.inner_text(".messages")
    assert agent.evaluate("window.__pwned") is None

    customer = browser.new_context(viewport={"width": 1280, "height": 820}).new_page()
    customer.goto(f"{live_server.url}/demo/app/?customer=demo-ada")
    badge = customer.locator("[data-proactive-widget] .badge")
    badge.wait_for(state="visible")
    assert badge.inner_text() == "1"
    # The host page styles buttons hot pink; the widget's Shadow DOM keeps its own look.
    launcher_bg = customer.eval_on_selector(
        "[data-proactive-widget]",
        "h => getComputedStyle(h.shadowRoot.querySelector('.launcher')).backgroundColor",
    )
    assert launcher_bg == "rgb(47, 91, 234)"
    customer.locator("[data-proactive-widget] .launcher").click()
    card = customer.locator("[data-proactive-widget] .msg")
    card.wait_for()
    assert "Your bank sync needs a hand" in card.inner_text()
    assert "reconnect your bank" in card.locator("strong").inner_text()
    assert customer.evaluate("window.__pwned") is None
    customer.screenshot(path=str(ARTIFACTS / "widget.png"))
    assert wait_for(lambda: Outreach.objects.for_tenant(tenant).get(pk=mine.pk).seen_at is not None)
    assert badge.is_hidden()

    customer.locator("[data-proactive-widget] .helpful button").first.click()
    customer.locator("[data-proactive-widget] .dismiss").click()
    assert customer.locator("[data-proactive-widget] .msg").count() == 0
    assert wait_for(
        lambda: OutreachEvent.objects.for_tenant(tenant).filter(outreach=mine, kind="dismissed").exists()
    )
    kinds = set(OutreachEvent.objects.for_tenant(tenant).filter(outreach=mine).values_list("kind", flat=True))
    assert {"claimed", "edited", "sent", "seen", "helpful", "dismissed"} <= kinds
    customer.reload()
    customer.locator("[data-proactive-widget] .launcher").click()
    customer.locator("[data-proactive-widget] .empty").wait_for()
