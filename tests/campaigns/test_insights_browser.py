"""An admin turns an insight into a disabled playbook from the Insights page, in Chromium."""

from __future__ import annotations

import os

import pytest
from django.utils import timezone

from accounts.models import Membership
from campaigns.models import Playbook
from campaigns.playbooks import playbook_preview
from proactive.insights.service import matching_now
from proactive.models import Insight, InsightRun
from tests.campaigns.test_browser import ARTIFACTS, CHROMIUM, browser, login  # noqa: F401
from tests.factories import CustomerFactory, MembershipFactory, TenantFactory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing: run `make browser`"),
]


def test_an_admin_creates_a_disabled_playbook_from_an_insight(live_server, browser, transactional_db):  # noqa: F811
    tenant = TenantFactory(slug="demo", name="Demo")
    admin = MembershipFactory(tenant=tenant, role=Membership.Role.ADMIN, user__email="admin@demo.test").user
    for i in range(7):
        CustomerFactory(
            tenant=tenant, external_id=f"c{i}", attributes={"plan": "enterprise" if i < 3 else "free"}
        )
    now = timezone.now()
    condition = {"metric": "attribute.plan", "op": "eq", "value": "enterprise"}
    [matching] = matching_now(tenant=tenant, as_of=now, conditions=[condition])
    run = InsightRun.objects.create(
        tenant=tenant, as_of=now, status="computed", target="contact", horizon_days=14, base_rate=0.1,
        stats={"tried": 420},
    )  # fmt: skip
    insight = Insight.objects.create(
        tenant=tenant, insight_run=run, rank=1, kind="generic", condition=condition,
        text=f"Customers whose `plan` is enterprise contact support within 14 days 2.5x as often "
        f"(1.6x-3.9x): 25% vs 10%. {matching} customers match today.",
        customers_now=matching, rate=0.25, base_rate=0.1, lift=2.5, ci_low=1.6, ci_high=3.9,
        p_value=0.0001, q_value=0.004, rows=80, reached=20,
        train={"rows": 120, "reached": 29, "rate": 0.24, "lift": 2.4},
        backtest=[
            {"as_of": now.isoformat(), "customers": 700, "reached": 70, "matched": 80, "matched_reached": 20}
        ],
    )  # fmt: skip

    page = login(browser, live_server, admin.email)
    page.goto(f"{live_server.url}/t/demo/insights/")
    assert "3 customers match today" in page.inner_text(".insight-text")
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1366, "height": 900})
    page.screenshot(path=str(ARTIFACTS / "insights-1366.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(ARTIFACTS / "insights-390.png"), full_page=True)
    page.set_viewport_size({"width": 1366, "height": 900})

    page.click("text=Create a disabled")
    page.wait_for_load_state()
    playbook = Playbook.objects.for_tenant(tenant).get()
    assert str(playbook.pk) in page.url
    assert "Created the disabled playbook" in page.content()
    assert playbook.enabled is False and playbook.trigger == insight.condition
    assert playbook_preview(tenant=tenant, trigger=playbook.trigger)["matching"] == insight.customers_now == 3
