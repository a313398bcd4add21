"""An admin confirms a suspected incident in Chromium: notices go out once per affected customer
and other nudges to them are held back."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Membership
from campaigns.firing import playbooks_evaluate
from campaigns.models import Incident, Outreach
from campaigns.monitoring import monitor_run
from tests.campaigns.monitoring_world import Outage, build_world
from tests.campaigns.test_browser import ARTIFACTS, CHROMIUM, browser, login  # noqa: F401
from tests.factories import MembershipFactory, PlaybookFactory, TenantFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing: run `make browser`"),
]


def test_an_admin_confirms_a_suspected_incident_from_its_page(live_server, browser, transactional_db):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    tenant = TenantFactory(slug="demo", name="Demo Software Inc.")
    admin = MembershipFactory(tenant=tenant, role=Membership.Role.ADMIN, user__email="admin@demo.test").user
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(hours=3)
    build_world(
        tenant=tenant,
        seed=31,
        customers=1500,
        weeks=5,
        end=now,
        outage=Outage("error.sync_failed", "integration", "salesforce", start, hours=3, share=0.5),
    )
    monitor_run(tenant=tenant, as_of=now)
    incident = Incident.objects.for_tenant(tenant).get()

    page = login(browser, live_server, admin.email)
    for width in (1366, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{live_server.url}/t/demo/incidents/")
        page.screenshot(path=str(ARTIFACTS / f"incidents-{width}.png"), full_page=True)
        page.goto(f"{live_server.url}/t/demo/incidents/{incident.pk}/")
        page.wait_for_selector("canvas[data-chart='spike-chart']")
        page.screenshot(path=str(ARTIFACTS / f"incident-{width}.png"), full_page=True)
    assert "Suspected" in page.inner_text("#status")
    page.click("#confirm")
    page.wait_for_load_state()
    assert "customers notified" in page.inner_text(".messages")
    assert "Open" in page.inner_text("#status")
    page.screenshot(path=str(ARTIFACTS / "incident-open.png"), full_page=True)

    notices = Outreach.objects.for_tenant(tenant).filter(incident=incident, status="sent")
    customers = list(notices.values_list("customer_id", flat=True))
    assert customers and len(customers) == len(set(customers))
    playbook = PlaybookFactory(
        tenant=tenant, trigger={"metric": "count(error.*, 30)", "op": "gte", "value": 1}, holdout_percent=0
    )
    playbooks_evaluate(tenant=tenant, as_of=timezone.now())
    held = Outreach.objects.for_tenant(tenant).filter(playbook=playbook, customer_id__in=customers)
    assert held.exists() and set(held.values_list("status", flat=True)) == {"suppressed"}
