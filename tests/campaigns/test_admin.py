from __future__ import annotations

import json
import re
from datetime import timedelta

from django.test import Client
from django.utils import timezone

from accounts.models import Membership
from campaigns.models import Playbook
from proactive.models import Customer
from tests.campaigns.helpers import make_customers
from tests.factories import ACTION, MembershipFactory, PlaybookFactory, TenantFactory, UserFactory


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


PREVIEW_URL = "/admin/campaigns/playbook/preview/"


def _signed_up(tenant, days_ago_by_count):
    """Customers signed up `days` ago, in groups: {days: how many}."""
    made = []
    for i, (days, n) in enumerate(days_ago_by_count.items()):
        group = make_customers(tenant, n, prefix=f"g{i}-")
        Customer.objects.for_tenant(tenant).filter(pk__in=[c.pk for c in group]).update(
            signed_up_at=timezone.now() - timedelta(days=days)
        )
        made += group
    return made


def test_the_preview_view_counts_an_unsaved_trigger_against_a_reference(admin_client_for, tenant):
    _signed_up(tenant, {1: 4, 5: 6, 20: 3})
    saved = PlaybookFactory(
        tenant=tenant, trigger={"all": [{"metric": "days_since_signup", "op": "gte", "value": 1}]}
    )
    edited = {"all": [{"metric": "days_since_signup", "op": "gte", "value": 4}]}
    response = admin_client_for.post(PREVIEW_URL, {"tenant": tenant.pk, "trigger": json.dumps(edited)})
    assert response.status_code == 200, response.content
    reference = Customer.objects.for_tenant(tenant).filter(
        signed_up_at__lte=timezone.now() - timedelta(days=4)
    )
    expected = sorted(reference.values_list("external_id", flat=True))
    assert response.json() == {"matching": len(expected), "sample": expected[:10]}
    assert response.json()["matching"] == 9
    saved.refresh_from_db()
    assert saved.trigger["all"][0]["value"] == 1  # previewing never saves


def test_the_preview_view_names_the_bad_part_of_an_invalid_trigger(admin_client_for, tenant):
    bad = {"all": [{"metric": "days_since_signup", "op": "gte", "value": 3}, {"metric": "count(error.*)"}]}
    response = admin_client_for.post(PREVIEW_URL, {"tenant": tenant.pk, "trigger": json.dumps(bad)})
    assert response.status_code == 400
    assert response.json()["error"].startswith("trigger.all[1]")
    response = admin_client_for.post(PREVIEW_URL, {"tenant": tenant.pk, "trigger": "{not json"})
    assert response.status_code == 400
    assert response.json() == {"error": "trigger: not valid JSON"}


def test_the_preview_view_refuses_another_tenant_and_non_admins(admin_client_for, agent_client, tenant):
    other = TenantFactory()
    make_customers(other, 3)
    trigger = json.dumps({"all": [{"metric": "days_since_signup", "op": "gte", "value": 0}]})
    for tenant_id in (other.pk, 10**9, "x"):
        response = admin_client_for.post(PREVIEW_URL, {"tenant": tenant_id, "trigger": trigger})
        assert response.status_code == 404
        assert "matching" not in response.json()
    # Not staff: the admin sends them to its login page.
    response = agent_client.post(PREVIEW_URL, {"tenant": tenant.pk, "trigger": trigger})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    # Staff, but an agent (not an admin) of the tenant: refused.
    staff_agent = MembershipFactory(tenant=tenant, role=Membership.Role.AGENT, user__is_staff=True).user
    client = Client()
    client.force_login(staff_agent)
    assert client.post(PREVIEW_URL, {"tenant": tenant.pk, "trigger": trigger}).status_code == 403
    # GET is not a preview.
    assert admin_client_for.get(PREVIEW_URL).status_code == 405


def test_a_superuser_may_preview_for_any_tenant(tenant):
    make_customers(tenant, 2)
    superuser = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(superuser)
    trigger = json.dumps({"all": [{"metric": "days_since_signup", "op": "gte", "value": 0}]})
    response = client.post(PREVIEW_URL, {"tenant": tenant.pk, "trigger": trigger})
    assert response.status_code == 200
    assert response.json()["matching"] == 2


def test_the_add_and_change_pages_carry_the_preview_button_script(admin_client_for, tenant):
    playbook = PlaybookFactory(tenant=tenant)
    for url in ("/admin/campaigns/playbook/add/", f"/admin/campaigns/playbook/{playbook.pk}/change/"):
        page = admin_client_for.get(url).content.decode()
        assert re.search(r"js/admin_preview\.[0-9a-f]{12}\.js", page)
        assert f'data-preview-url="{PREVIEW_URL}"' in page
