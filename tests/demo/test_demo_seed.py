"""The demo story `make demo` seeds: a small version of it, end to end, through its pages."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client

from campaigns.models import Outreach, Playbook
from demo.seed import ADMIN, DEMO_SLUG, PREVENTED_PERCENT, demo_seed
from proactive.models import PageSnapshot, PipelineRun, Signal

pytestmark = pytest.mark.django_db


def _contacts_after(tenant, *, holdout: bool) -> int:
    """Contact signals within 14 days after the outreach of playbooks with an effect."""
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT count(*) FROM proactive_signal s
            JOIN campaigns_outreach o ON o.tenant_id = s.tenant_id AND o.customer_id = s.customer_id
            JOIN campaigns_playbook p ON p.id = o.playbook_id
            WHERE s.tenant_id = %s AND s.name = 'support.contact' AND p.name = ANY(%s) AND o.holdout = %s
              AND s.timestamp >= o.triggered_at AND s.timestamp < o.triggered_at + interval '14 days'
            """,
            [tenant.pk, list(PREVENTED_PERCENT), holdout],
        )
        return cur.fetchone()[0]


def test_the_demo_seeds_a_story_every_page_can_show():
    lines: list[str] = []
    tenant = demo_seed(customers=300, days=60, weeks=2, log=lines.append)
    assert tenant.slug == DEMO_SLUG
    assert Playbook.objects.for_tenant(tenant).count() == 4
    runs = PipelineRun.objects.for_tenant(tenant)
    assert runs.count() >= 3 and not runs.exclude(status=PipelineRun.Status.SUCCEEDED).exists()
    assert Outreach.objects.for_tenant(tenant).filter(holdout=True).exists()
    assert any("did not happen" in line for line in lines)
    assert PageSnapshot.objects.for_tenant(tenant).filter(name="overview").exists()

    client = Client()
    # The demo logins work through the real (throttled) login form.
    response = client.post("/login/", {"username": ADMIN[0], "password": ADMIN[1]})
    assert response.status_code == 302 and "_auth_user_id" in client.session
    for path in ["", "model/", "playbooks/", "customers/", "fatigue/", "runs/", "queue/"]:
        assert client.get(f"/t/{DEMO_SLUG}/{path}").status_code == 200, path

    # Seeding again changes nothing: same signals, no new runs.
    signals, run_count = Signal.objects.for_tenant(tenant).count(), runs.count()
    demo_seed(customers=300, days=60, weeks=2, log=lines.append)
    assert Signal.objects.for_tenant(tenant).count() == signals and runs.count() == run_count


def test_prevented_contacts_come_only_from_customers_who_were_reached(monkeypatch):
    monkeypatch.setattr("demo.seed.PREVENTED_PERCENT", dict.fromkeys(PREVENTED_PERCENT, 100))
    tenant = demo_seed(customers=300, days=60, weeks=2, log=lambda line: None)
    # Every contact after a delivered message of those playbooks is gone (up to the final run's
    # outreach, fired after the removal); the holdout's are all still there.
    assert _contacts_after(tenant, holdout=True) > 0
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT count(*) FROM proactive_signal s
            JOIN campaigns_outreach o ON o.tenant_id = s.tenant_id AND o.customer_id = s.customer_id
            JOIN campaigns_playbook p ON p.id = o.playbook_id
            WHERE s.tenant_id = %s AND s.name = 'support.contact' AND o.status = 'sent'
              AND p.name = ANY(%s)
              AND s.timestamp >= o.sent_at AND s.timestamp < o.sent_at + interval '14 days'
              AND o.triggered_at < (SELECT max(as_of) FROM proactive_pipelinerun WHERE tenant_id = %s)
            """,
            [tenant.pk, list(PREVENTED_PERCENT), tenant.pk],
        )
        assert cur.fetchone()[0] == 0
