"""The widget inserts hostile messages safely, even if the server's sanitising were bypassed.

Chromium loads a tenant page with static/widget/proactive-widget.js; the inbox response is
served by Playwright's router with every payload of hostile_payloads.txt raw, unsanitised,
in `body_html` (the widget's second fence), `title`, `cta_label` and `cta_url`. Nothing may
run: no dialog, no `window.__xss`, no script/handler/javascript: URL in the Shadow DOM.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from django.conf import settings

from tests.campaigns.test_browser import ARGS, CHROMIUM
from tests.security.html_checks import PAYLOADS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing: run `make browser`"),
]

ORIGIN = "https://tenant.test"
WIDGET = Path(settings.BASE_DIR) / "static" / "widget" / "proactive-widget.js"
PAGE = f"""<!doctype html><html><body><h1>Tenant app</h1>
<script src="{ORIGIN}/widget.js" data-publishable-key="pk_test" data-token="a.eyJzdWIiOiJjIn0.b"
        data-api-base="{ORIGIN}/api/v1"></script></body></html>"""


def _armed(payload: str) -> str:
    # Every payload's alert(...) also sets a flag the test can read without a dialog.
    return payload.replace("alert(", "(window.__xss=1,alert)(")


def messages() -> list[dict]:
    out = []
    for i, payload in enumerate(PAYLOADS):
        armed = _armed(payload)
        out.append(
            {
                "id": f"00000000-0000-0000-0000-{i:012d}",
                "title": armed,
                "body_html": f"<p>{armed}</p>{armed}",
                "cta_label": armed,
                "cta_url": "javascript:window.__xss=1" if i % 2 else armed,
                "sent_at": "2026-01-01T00:00:00+00:00",
            }
        )
    return out


CHECK_SHADOW = """() => {
  const root = document.querySelector('[data-proactive-widget]').shadowRoot.querySelector('.list');
  const bad = [];
  root.querySelectorAll('script,iframe,object,embed,img,svg,math,base,meta,link,form,style').forEach(n => {
    bad.push(n.tagName);
  });
  root.querySelectorAll('*').forEach(el => {
    for (const a of el.attributes) {
      if (/^on/i.test(a.name)) bad.push(el.tagName + '[' + a.name + ']');
      if (/^(href|src|action|formaction)$/i.test(a.name) && /^\\s*(javascript|data|vbscript):/i.test(a.value))
        bad.push(el.tagName + '[' + a.name + '=' + a.value + ']');
    }
  });
  return {bad: bad, cards: root.querySelectorAll('.msg').length};
}"""


def test_the_widget_never_executes_hostile_messages():
    from playwright.sync_api import sync_playwright

    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.route(f"{ORIGIN}/app", lambda r: r.fulfill(body=PAGE, content_type="text/html"))
            page.route(
                f"{ORIGIN}/widget.js",
                lambda r: r.fulfill(body=WIDGET.read_text(), content_type="application/javascript"),
            )
            page.route(
                f"{ORIGIN}/api/v1/inbox",
                lambda r: r.fulfill(
                    body=json.dumps({"messages": messages()}),
                    content_type="application/json",
                    headers={"Access-Control-Allow-Origin": ORIGIN},
                ),
            )
            page.route(
                f"{ORIGIN}/api/v1/inbox/*/events",
                lambda r: r.fulfill(body="{}", content_type="application/json"),
            )
            page.route("**/evil.test/**", lambda r: r.abort())
            page.goto(f"{ORIGIN}/app")
            page.locator("[data-proactive-widget] .launcher").click()
            page.wait_for_function(
                "() => document.querySelector('[data-proactive-widget]').shadowRoot"
                ".querySelectorAll('.msg').length > 0"
            )
            # Fire the events injected handlers would listen to, without clicking away.
            page.evaluate(
                "() => document.querySelector('[data-proactive-widget]').shadowRoot.querySelectorAll('*')"
                ".forEach(n => ['mouseover', 'focus', 'load', 'error']"
                ".forEach(t => n.dispatchEvent(new Event(t))))"
            )
            page.wait_for_timeout(500)
            result = page.evaluate(CHECK_SHADOW)
            flagged = page.evaluate("() => window.__xss || 0")
            titles = page.evaluate(
                "() => [...document.querySelector('[data-proactive-widget]').shadowRoot"
                ".querySelectorAll('.msg h3')].map(h => h.textContent)"
            )
        finally:
            browser.close()
    assert result["cards"] == len(PAYLOADS)
    assert not dialogs, dialogs[:5]
    assert not flagged
    assert not result["bad"], result["bad"][:20]
    assert titles[0] == _armed(PAYLOADS[0])  # titles are shown as text, verbatim
