"""In Chromium, as a tenant admin typing no JSON: build a playbook with a nested condition from
the picker, watch the live count, preview the message, save, run the pipeline from the page and
see the playbook fire; then a campaign with its audience preview. Screenshots of the changed
pages at 1366 and 390 px go to test-artifacts/."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from accounts.models import Membership
from campaigns.models import Campaign, Outreach, Playbook
from proactive.ingest import rollups_rebuild
from tests.campaigns.test_browser import ARTIFACTS, browser, login, pytestmark  # noqa: F401
from tests.factories import CustomerFactory, MembershipFactory, SignalFactory, TenantFactory


def _count(page) -> str:
    return page.inner_text("#match-count")


def _wait_count_change(page, before: str) -> str:
    page.wait_for_function(
        "before => document.querySelector('#match-count')?.textContent !== before", arg=before, timeout=10_000
    )
    return _count(page)


def test_an_admin_builds_a_playbook_and_a_campaign_without_json(live_server, browser, transactional_db):  # noqa: F811
    ARTIFACTS.mkdir(exist_ok=True)
    tenant = TenantFactory(slug="acme", name="Acme")
    admin = MembershipFactory(tenant=tenant, role=Membership.Role.ADMIN, user__email="admin@acme.test").user
    now = timezone.now()
    for i in range(12):
        customer = CustomerFactory(
            tenant=tenant,
            external_id=f"cust-{i:02d}",
            name=f"Customer{i:02d} Example",
            attributes={"plan": "pro" if i % 2 else "free"},
            signed_up_at=now - timedelta(days=10 if i < 6 else 200),
        )
        for k in range(i % 5):
            SignalFactory(
                tenant=tenant,
                customer=customer,
                name="error.sync_failed",
                timestamp=now - timedelta(hours=k + 2),
            )
    rollups_rebuild(tenant_id=tenant.pk)

    page = login(browser, live_server, admin.email)
    page.goto(f"{live_server.url}/t/acme/playbooks/")
    page.click("#new-playbook")
    page.wait_for_selector("#match-count")
    page.fill("#name", "Sync errors, pro or new")
    first = _count(page)  # errors >= 1: customers with i % 5 > 0
    assert first == "9"
    page.fill("input[name='value-r.0']", "2")
    second = _wait_count_change(page, first)
    assert second == "6"

    # A nested ANY group from the buttons, its conditions from the picker.
    page.click("fieldset[data-path='r'] > .cond-add button[data-op='add_any']")
    page.wait_for_selector("select[name='measure-r.1.0']")
    page.select_option("select[name='measure-r.1.0']", "attribute")
    page.wait_for_selector("select[name='attr-r.1.0']")
    page.select_option("select[name='attr-r.1.0']", "plan")
    page.select_option("select[name='op-r.1.0']", "eq")
    page.fill("input[name='value-r.1.0']", "pro")
    page.click("fieldset[data-path='r.1'] > .cond-add button[data-op='add_leaf']")
    page.wait_for_selector("select[name='measure-r.1.1']")
    page.select_option("select[name='measure-r.1.1']", "days_since_signup")
    page.wait_for_selector("select[name='signal-r.1.1']", state="detached")
    page.select_option("select[name='op-r.1.1']", "lt")
    page.fill("input[name='value-r.1.1']", "30")
    # errors >= 2 (i % 5 in 2..4) AND (pro (odd i) OR signed up 10 days ago (i < 6))
    expected = str(sum(1 for i in range(12) if i % 5 >= 2 and (i % 2 or i < 6)))
    page.wait_for_function(
        "n => document.querySelector('#match-count')?.textContent === n", arg=expected, timeout=10_000
    )
    assert "OR" in page.inner_text("#trigger-words")

    page.fill("#title", "Need a hand, {{ customer.first_name }}?")
    page.fill("#body", "Your bank sync failed: **reconnect it** in Settings.")
    page.wait_for_function(
        "() => document.querySelector('#message-preview strong')?.textContent === 'reconnect it'",
        timeout=10_000,
    )
    sample_name = page.eval_on_selector("#sample_customer", "s => s.options[s.selectedIndex].text")
    assert f"Need a hand, {sample_name.split()[0]}?" in page.inner_text("#message-preview")
    page.fill("#holdout_percent", "0")
    page.check("#enabled")
    for width in (1366, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(ARTIFACTS / f"playbook_builder_{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1366, "height": 900})
    page.click("#save-playbook")
    page.wait_for_selector("#next-evaluation")
    playbook = Playbook.objects.for_tenant(tenant).get()
    assert playbook.trigger["all"][1]["any"][0] == {"metric": "attribute.plan", "op": "eq", "value": "pro"}

    page.click("#run-now")
    page.wait_for_url("**/t/acme/runs/")
    page.wait_for_selector("#runs table")
    assert "manual" in page.inner_text("#runs table")
    fired = Outreach.objects.for_tenant(tenant).filter(playbook=playbook)
    assert fired.count() == int(expected) and set(fired.values_list("status", flat=True)) == {"sent"}
    page.goto(f"{live_server.url}/t/acme/playbooks/{playbook.pk}/")
    assert f"Fired\n{expected}" in page.inner_text(".tiles") or expected in page.inner_text(".tiles .tile")

    # A campaign: its audience previewed before it is scheduled.
    page.goto(f"{live_server.url}/t/acme/campaigns/")
    page.click("#new-campaign")
    page.wait_for_selector("#match-count")
    before = _count(page)
    page.select_option("select[name='measure-r.0']", "attribute")
    page.wait_for_selector("select[name='attr-r.0']")
    page.select_option("select[name='op-r.0']", "eq")
    page.fill("input[name='value-r.0']", "pro")
    page.select_option("select[name='attr-r.0']", "plan")
    page.fill("#name", "Pro plan notice")
    page.wait_for_function("n => document.querySelector('#match-count')?.textContent === n", arg="6")
    assert before == "9"
    page.fill("#title", "News for {{ customer.first_name }}")
    page.check("#when-now")
    page.fill("#holdout_percent", "0")
    for width in (1366, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(ARTIFACTS / f"campaign_builder_{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1366, "height": 900})
    page.click("#save-campaign")
    page.wait_for_url("**/t/acme/campaigns/*/")
    page.wait_for_timeout(10_500)  # one manual run per 10 seconds: this is a new one
    page.goto(f"{live_server.url}/t/acme/runs/")
    page.click("#run-now")
    page.wait_for_url("**/t/acme/runs/")
    campaign = Campaign.objects.for_tenant(tenant).get()
    assert campaign.status == Campaign.Status.SENT
    assert Outreach.objects.for_tenant(tenant).filter(campaign=campaign).count() == 6

    pages = {
        "overview": "/t/acme/",
        "playbooks": "/t/acme/playbooks/",
        "playbook_detail": f"/t/acme/playbooks/{playbook.pk}/",
        "campaigns": "/t/acme/campaigns/",
        "campaign_detail": f"/t/acme/campaigns/{campaign.pk}/",
        "runs": "/t/acme/runs/",
        "customer": "/t/acme/customers/cust-03/",
        "model": "/t/acme/model/",
    }
    for width in (1366, 390):
        page.set_viewport_size({"width": width, "height": 900})
        for name, path in pages.items():
            page.goto(f"{live_server.url}{path}")
            page.screenshot(path=str(ARTIFACTS / f"{name}_{width}.png"), full_page=True)
