"""Every page under the Content-Security-Policy in Debian's Chromium: no violation in the console,
charts still draw, the widget still renders on the demo page, and the behaviour that moved out of
inline handlers (confirm, auto-submit, select all, queue keys) still works."""

from __future__ import annotations

import os

import pytest

from tests.campaigns.test_browser import ARGS, CHROMIUM  # one launch recipe for every browser test
from tests.security.csp_world import build_csp_world, build_demo_tenant

DRAWN = "() => [...document.querySelectorAll('canvas[data-chart]')].filter(c => Chart.getChart(c)).length"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing: run `make browser`"),
]


@pytest.fixture
def session(monkeypatch, live_server, transactional_db, settings):
    """A logged-in Chromium tab (the login page is the first page checked) and the pages to visit."""
    from playwright.sync_api import sync_playwright

    from tests.factories import TenantFactory

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    monkeypatch.setattr("dashboard.selectors.PAGE_CACHE_SECONDS", 0)
    settings.DEMO = True
    build_demo_tenant()
    user, pages = build_csp_world(TenantFactory(slug="acme", name="Acme"))
    user.set_password("pw")
    user.save(update_fields=["password"])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        tab = browser.new_page(viewport={"width": 1366, "height": 860})
        violations: list[str] = []
        errors: list[str] = []
        tab.on(
            "console",
            lambda m: "Content Security Policy" in m.text and violations.append(f"{tab.url}: {m.text}"),
        )
        tab.on("pageerror", lambda e: errors.append(f"{tab.url}: {e}"))
        tab.goto(f"{live_server.url}/login/")
        tab.fill("input[name=username]", user.email)
        tab.fill("input[name=password]", "pw")
        tab.click("button[type=submit]")
        tab.wait_for_load_state("load")
        yield tab, pages, violations, errors
        browser.close()


def test_no_page_violates_the_policy_and_charts_draw(session, live_server):
    tab, pages, violations, errors = session
    charts = 0
    for name, path in pages.items():
        response = tab.goto(live_server.url + path)
        assert response is not None and response.status == 200, (name, response and response.status)
        assert "nonce-" in response.headers["content-security-policy"], name
        tab.wait_for_load_state("load")
        canvases = tab.locator("canvas[data-chart]").count()
        if canvases:
            drawn = tab.evaluate(DRAWN)
            assert drawn == canvases, f"{name}: {drawn} of {canvases} charts drawn"
            charts += drawn
        if name == "demo":
            # The widget's Shadow DOM (with its <style>) renders and its same-origin fetch works.
            tab.locator("[data-proactive-widget] .launcher").click()
            tab.locator("[data-proactive-widget] .msg").wait_for(timeout=10_000)
        if name == "playbook":
            tab.wait_for_load_state("networkidle")  # the htmx-loaded parts (backtest charts) too
    assert charts > 5
    assert not violations, violations
    assert not errors, errors


def test_what_left_the_inline_handlers_still_works(session, live_server):
    tab, pages, violations, errors = session
    asked: list[str] = []

    def answer_no(dialog):
        asked.append(dialog.message)
        dialog.dismiss()

    tab.on("dialog", answer_no)

    # Keys: rotating asks first; saying no stays on the page with the same keys.
    tab.goto(live_server.url + pages["keys"])
    tab.locator("form[data-confirm] button").last.click()
    tab.wait_for_timeout(300)
    assert asked == ["Rotate? The old value stops working at once."]
    assert tab.url == live_server.url + pages["keys"]

    # Queue: select all, ask before sending, auto-submitting filters, keyboard moves.
    tab.goto(live_server.url + pages["queue"])
    picks = tab.locator("#queue-list input.pick")
    assert picks.count() >= 1
    tab.locator("input[data-select-all]").check()
    assert all(picks.nth(i).is_checked() for i in range(picks.count()))
    tab.locator("button[value=send]").click()
    tab.wait_for_timeout(300)
    assert asked[-1] == "Send every selected message now?"
    assert tab.url == live_server.url + pages["queue"]
    tab.locator("input[data-select-all]").uncheck()
    tab.evaluate("() => document.activeElement.blur()")  # keys typed into a field are left alone
    tab.keyboard.press("j")
    assert "outline" in (tab.locator("#queue-list tbody tr").first.get_attribute("style") or "")
    with tab.expect_navigation():
        tab.select_option("select[name=status]", "sent")
    assert "status=sent" in tab.url

    # Item: Escape goes back to the queue.
    tab.goto(live_server.url + pages["item"])
    with tab.expect_navigation():
        tab.keyboard.press("Escape")
    assert tab.url == live_server.url + pages["queue"]

    # Webhook: deleting asks first.
    tab.goto(live_server.url + pages["webhook"])
    tab.locator("form[data-confirm] button").click()
    tab.wait_for_timeout(300)
    assert asked[-1] == "Delete this webhook and its delivery log?"
    assert not violations, violations
    assert not errors, errors
