"""In Chromium, as a tenant admin typing no JSON: open an incident from the Incidents page with
the condition picker (signals since a time, a plan), watch the live count and the notice preview,
open it and find it on the list. Screenshots at 1366 and 390 px go to test-artifacts/."""

from __future__ import annotations

from datetime import UTC, timedelta

from django.utils import timezone

from accounts.models import Membership
from campaigns.models import Incident, Outreach
from proactive.ingest import rollups_rebuild
from tests.campaigns.test_browser import ARTIFACTS, browser, login, pytestmark  # noqa: F401
from tests.factories import CustomerFactory, MembershipFactory, SignalFactory, TenantFactory


def _wait_count(page, expected: str) -> None:
    page.wait_for_function(
        "n => document.querySelector('#match-count')?.textContent === n", arg=expected, timeout=10_000
    )


def test_an_admin_opens_an_incident_without_json(live_server, browser, transactional_db):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    tenant = TenantFactory(slug="acme", name="Acme")
    admin = MembershipFactory(tenant=tenant, role=Membership.Role.ADMIN, user__email="admin@acme.test").user
    now = timezone.now()
    for i in range(10):
        customer = CustomerFactory(
            tenant=tenant,
            external_id=f"cust-{i:02d}",
            name=f"Customer{i:02d} Example",
            attributes={"plan": "pro" if i % 2 else "free"},
            signed_up_at=now - timedelta(days=100),
        )
        # cust-00..04 hit the error in the last hours, the others two days ago.
        SignalFactory(
            tenant=tenant,
            customer=customer,
            name="error.sync_failed",
            timestamp=now - (timedelta(hours=1) if i < 5 else timedelta(days=2)),
        )
    rollups_rebuild(tenant_id=tenant.pk)

    page = login(browser, live_server, admin.email)
    page.goto(f"{live_server.url}/t/acme/incidents/")
    page.click("#new-incident")
    page.wait_for_selector("#match-count")
    page.fill("#incident_title", "Bank sync failing")
    page.fill("#component", "bank-sync")

    page.select_option("select[name='measure-r.0']", "count_since")
    page.wait_for_selector("input[name='since-r.0']")
    page.select_option("select[name='signal-r.0']", "error.sync_failed")
    since = (now - timedelta(hours=6)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M")
    page.fill("input[name='since-r.0']", since)
    page.fill("input[name='value-r.0']", "1")
    _wait_count(page, "5")  # cust-00..04
    assert "since" in page.inner_text("#trigger-words")

    page.click("fieldset[data-path='r'] > .cond-add button[data-op='add_leaf']")
    page.wait_for_selector("select[name='measure-r.1']")
    page.select_option("select[name='measure-r.1']", "attribute")
    page.wait_for_selector("select[name='attr-r.1']")
    page.select_option("select[name='attr-r.1']", "plan")
    page.select_option("select[name='op-r.1']", "eq")
    page.fill("input[name='value-r.1']", "pro")
    _wait_count(page, "2")  # cust-01, cust-03

    page.fill("#title", "Bank sync is failing, {{ customer.first_name }}")
    page.fill("#body", "We know: **no need to contact support**. We will tell you when it is fixed.")
    page.wait_for_function(
        "t => document.querySelector('#message-preview strong')?.textContent === t",
        arg="no need to contact support",
        timeout=10_000,
    )
    assert "Bank sync is failing, Customer01" in page.inner_text("#message-preview")
    page.check("#follow_up_on")
    page.fill("#fu_title", "Bank sync works again")
    page.fill("#fu_body", "Sorry for the trouble.")
    for width in (1366, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(ARTIFACTS / f"incident_builder_{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1366, "height": 900})

    page.click("#save-incident")
    page.wait_for_selector("#edit-incident")
    assert "2 affected customers notified" in page.inner_text("body")
    incident = Incident.objects.for_tenant(tenant).get()
    assert incident.status == Incident.Status.OPEN and incident.follow_up["title"] == "Bank sync works again"
    notified = Outreach.objects.for_tenant(tenant).filter(incident=incident, status=Outreach.Status.SENT)
    assert sorted(notified.values_list("customer__external_id", flat=True)) == ["cust-01", "cust-03"]
    for width in (1366, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(ARTIFACTS / f"incident_detail_{width}.png"), full_page=True)

    page.goto(f"{live_server.url}/t/acme/incidents/")
    assert "Bank sync failing" in page.inner_text("#open")
    for width in (1366, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(ARTIFACTS / f"incident_list_{width}.png"), full_page=True)
