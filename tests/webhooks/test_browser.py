"""In Debian's Chromium: an admin adds a webhook, copies the one-time secret, and watches the
delivery log fill in while a failing receiver is retried. Screenshots at 1366 and 390 px."""

from __future__ import annotations

import os
import time

import pytest
from django.utils import timezone
from standardwebhooks import Webhook

from accounts.models import Membership
from campaigns.incidents import incident_open
from tests.campaigns.test_browser import ARTIFACTS, CHROMIUM, browser  # noqa: F401
from tests.factories import MembershipFactory, TenantFactory
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_delivery import INCIDENT
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import deliveries_sweep
from webhooks.signing import new_secret

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing: run `make browser`"),
]


def test_an_admin_adds_a_webhook_and_reads_its_delivery_log(live_server, browser, transactional_db, settings):  # noqa: F811
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    settings.WEBHOOKS_RETRY_BASE_SECONDS = 0.2
    settings.WEBHOOKS_SWEEP_GRACE_SECONDS = 0
    ARTIFACTS.mkdir(exist_ok=True)
    receiver = Receiver(fail_first=2).start()
    try:
        tenant = TenantFactory(slug="demo", name="Demo Software Inc.")
        MembershipFactory(tenant=tenant, role=Membership.Role.ADMIN, user__email="admin@demo.test")
        WebhookEndpoint.objects.create(
            tenant=tenant, url="https://crm.example.com/hooks/proactive", events=["model.promoted"],
            secret=new_secret(), enabled=False, disabled_at=timezone.now(),
            disabled_reason="Disabled automatically: all 20 attempts since 2026-11-27 08:00 UTC failed "
            "(last: HTTP 503).",
        )  # fmt: skip
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        page = context.new_page()
        page.goto(f"{live_server.url}/login/")
        page.fill("input[name=username]", "admin@demo.test")
        page.fill("input[name=password]", "pw")
        page.click("button[type=submit]")
        page.wait_for_load_state()
        page.click("nav >> text=Webhooks")
        page.fill("input[name=url]", receiver.url)
        page.check("input[value='incident.opened']")
        page.check("input[value='incident.resolved']")
        page.screenshot(path=str(ARTIFACTS / "webhooks-list-1366.png"), full_page=True)
        page.click("text=Add webhook")
        page.wait_for_load_state()
        secret = page.inner_text("#new-secret").strip()
        assert secret.startswith("whsec_")
        page.screenshot(path=str(ARTIFACTS / "webhooks-created-1366.png"), full_page=True)

        incident_open(tenant=tenant, data=INCIDENT)  # commits: delivered at once, and fails
        deadline = time.monotonic() + 15
        while WebhookDelivery.objects.for_tenant(tenant).get().status != "succeeded":
            assert time.monotonic() < deadline
            deliveries_sweep()
            time.sleep(0.05)
        page.reload()
        log = page.inner_text("table.data")
        assert "delivered" in log and "HTTP 500" in log and "204" in log
        for request in receiver.requests:
            Webhook(secret).verify(request.body, {k.lower(): v for k, v in request.headers.items()})
        page.screenshot(path=str(ARTIFACTS / "webhooks-detail-1366.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(ARTIFACTS / "webhooks-detail-390.png"), full_page=True)
        page.click("text=← All webhooks")
        page.wait_for_load_state()
        assert "Disabled automatically" in page.inner_text("table.data")
        page.screenshot(path=str(ARTIFACTS / "webhooks-list-390.png"), full_page=True)
        page.set_viewport_size({"width": 1366, "height": 900})
        page.screenshot(path=str(ARTIFACTS / "webhooks-list-after-1366.png"), full_page=True)
    finally:
        receiver.stop()
