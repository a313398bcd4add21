from __future__ import annotations

import json
from datetime import timedelta

from django.utils import timezone

from campaigns.models import Playbook
from tests.campaigns.helpers import make_customers
from tests.factories import ACTION, PlaybookFactory


def form_data(tenant, **changes):
    data = {
        "tenant": tenant.pk,
        "name": "Errors",
        "enabled": "on",
        "trigger": json.dumps({"all": [{"metric": "days_since_signup", "op": "gte", "value": 3}]}),
        "action": json.dumps(ACTION),
        "cooldown_days": 14,
        "holdout_percent": 10,
        "review_expiry_hours": 72,
    }
    data.update(changes)
    return data


def test_an_invalid_trigger_is_a_form_error_naming_the_bad_part(admin_client_for, tenant):
    bad = json.dumps(
        {
            "all": [
                {"metric": "days_since_signup", "op": "gte", "value": 3},
                {"metric": "count(error.*)", "op": "gte", "value": 1},
            ]
        }
    )
    response = admin_client_for.post("/admin/campaigns/playbook/add/", form_data(tenant, trigger=bad))
    assert response.status_code == 200
    assert "trigger.all[1].metric: " in response.content.decode()
    assert not Playbook.objects.for_tenant(tenant).exists()


def test_an_invalid_action_is_a_form_error(admin_client_for, tenant):
    bad = json.dumps({**ACTION, "channel": "sms"})
    response = admin_client_for.post("/admin/campaigns/playbook/add/", form_data(tenant, action=bad))
    assert response.status_code == 200
    assert "action.channel: " in response.content.decode()


def test_saving_shows_the_preview_and_the_change_page_keeps_it(admin_client_for, tenant):
    customers = make_customers(tenant, 7)
    type(customers[0]).objects.for_tenant(tenant).filter(pk__in=[c.pk for c in customers[:5]]).update(
        signed_up_at=timezone.now() - timedelta(days=10)
    )
    type(customers[0]).objects.for_tenant(tenant).filter(pk__in=[c.pk for c in customers[5:]]).update(
        signed_up_at=timezone.now()
    )
    response = admin_client_for.post("/admin/campaigns/playbook/add/", form_data(tenant), follow=True)
    assert response.status_code == 200
    assert "5 customers match now" in response.content.decode()
    playbook = Playbook.objects.for_tenant(tenant).get()
    page = admin_client_for.get(f"/admin/campaigns/playbook/{playbook.pk}/change/").content.decode()
    assert "5 customers match now" in page
    assert "signed up at least 3 days ago" in page


def test_another_tenants_playbook_is_not_in_the_admin(admin_client_for, tenant):
    other = PlaybookFactory()
    response = admin_client_for.get(f"/admin/campaigns/playbook/{other.pk}/change/")
    assert response.status_code in (302, 404)
