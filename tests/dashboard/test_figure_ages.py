"""Every page showing figures from a stored snapshot or a past run says how old they are, one way:
"as of 12 minutes ago" with the exact time (the tenant's zone) in the title."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.template import Context, Template
from django.utils import timezone

from accounts.models import Membership
from campaigns.models import Incident, Outreach
from campaigns.monitoring import affected_condition, default_notice
from proactive.models import InsightRun, PipelineRun
from tests.dashboard.pages_world import build_pages_world
from tests.dashboard.test_pages import client_for
from tests.factories import TenantFactory

AGE = re.compile(
    r'<time class="as-of" datetime="[^"]+" title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ([\w/]+)">([^<]+)</time>'
)


def ages(html: str) -> list[tuple[str, str]]:
    return [(zone, text.replace("\xa0", " ")) for zone, text in AGE.findall(html)]


@pytest.fixture(autouse=True)
def no_page_cache(monkeypatch):
    monkeypatch.setattr("dashboard.selectors.PAGE_CACHE_SECONDS", 0)


def render_age(when, tenant=None, prefix=None) -> str:
    args = "when" if prefix is None else f'when "{prefix}"'
    template = Template("{% load pages %}{% as_of " + args + " %}")
    return template.render(Context({"when": when, "current_tenant": tenant})).replace("\xa0", " ")


def test_ages_and_waits_under_a_minute_read_as_words_not_zero_minutes():
    now = timezone.now()
    template = Template("{% load pages %}{{ when|ago }} | {{ when|waited:now }}")

    def render(when) -> str:
        return template.render(Context({"when": when, "now": now})).replace("\xa0", " ")

    assert render(now - timedelta(seconds=20)) == "just now | under a minute"
    assert render(now - timedelta(hours=2, minutes=5)) == "2 hours, 5 minutes ago | 2 hours, 5 minutes"
    assert render(None) == "— | —"


def test_the_tag_says_the_age_and_keeps_the_exact_time_in_the_title(db):
    now = timezone.now()
    tenant = TenantFactory(slug="paris", timezone="Europe/Paris")
    html = render_age(now - timedelta(minutes=12, seconds=5), tenant)
    assert ">as of 12 minutes ago</time>" in html
    local = timezone.localtime(now - timedelta(minutes=12, seconds=5), tenant.tz)
    assert f'title="{local:%Y-%m-%d %H:%M:%S} Europe/Paris"' in html
    assert ">as of just now<" in render_age(now)
    assert ">scored 3 days ago<" in render_age(now - timedelta(days=3, hours=2), prefix="scored")
    assert ">2 hours ago<" in render_age((now - timedelta(hours=2, minutes=1)).isoformat(), prefix="")
    assert "not computed yet" in render_age(None)


def test_each_page_of_stored_figures_renders_its_age(tenant):
    world = build_pages_world(tenant, customers=8)
    now = timezone.now()
    InsightRun.objects.create(
        tenant=tenant,
        as_of=now - timedelta(hours=5),
        status="computed",
        target="contact",
        horizon_days=14,
        base_rate=0.1,
    )
    PipelineRun.objects.create(
        tenant=tenant,
        kind=PipelineRun.Kind.MONITOR,
        status="succeeded",
        window_key="m1",
        as_of=now - timedelta(minutes=4),
        started_at=now - timedelta(minutes=4),
        summary={"checked": 3},
    )
    started = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    notice, _ = default_notice("error.sync_failed")
    incident = Incident.objects.create(
        tenant=tenant,
        component="error.sync_failed",
        title="Spike",
        status=Incident.Status.SUSPECTED,
        affected=affected_condition("error.sync_failed", started, None),
        notice=notice,
        detection={
            "signal": "error.sync_failed",
            "segment": None,
            "started_at": started.isoformat(),
            "detected_at": (now - timedelta(minutes=30)).isoformat(),
            "customers_affected": 1,
            "expected": 0.1,
            "observed": 1.0,
            "p_value": 1e-6,
        },
        monitored_signal="error.sync_failed",
        monitor_state={"checked_at": (now - timedelta(minutes=4)).isoformat()},
    )
    item = Outreach.objects.for_tenant(tenant).get(status=Outreach.Status.PENDING_REVIEW)
    client = client_for(tenant, Membership.Role.ADMIN)
    expected = {
        "/t/acme/": ["as of just now"],  # the overview's snapshot, stored by the world's last step
        "/t/acme/model/": ["scored just now"],
        f"/t/acme/playbooks/{world.playbook.pk}/": ["as of just now"],  # the outcomes sweep
        f"/t/acme/campaigns/{world.campaign.pk}/": ["as of just now"],
        "/t/acme/customers/p000/": ["just now"],
        "/t/acme/insights/": ["as of 5 hours ago"],
        f"/t/acme/queue/{item.pk}/": ["scored just now"],
        "/t/acme/incidents/": ["4 minutes ago"],
        f"/t/acme/incidents/{incident.pk}/": ["checked 4 minutes ago"],
    }
    for path, texts in expected.items():
        response = client.get(path)
        assert response.status_code == 200, path
        found = ages(response.content.decode())
        assert found, f"{path} shows no age"
        assert {zone for zone, _ in found} == {"UTC"}, path
        for text in texts:
            assert text in [t for _, t in found], (path, found)
