"""The Django admin keeps rows in their tenant, validates tenant settings like the API, and
`is_staff` follows admin memberships."""

from __future__ import annotations

import json

import pytest
from django.contrib import admin
from django.test import Client, RequestFactory

from accounts.admin_base import TenantScopedAdmin
from accounts.models import Membership, Tenant, User
from accounts.scoping import TenantOwned
from accounts.services import membership_set
from campaigns.models import Playbook
from proactive.models import Customer
from tests.factories import ACTION, CustomerFactory, MembershipFactory, PlaybookFactory, TenantFactory


@pytest.fixture
def two_tenant_admin(db):
    a, b = TenantFactory(slug="a"), TenantFactory(slug="b")
    user = MembershipFactory(tenant=a, role="admin").user
    MembershipFactory(tenant=b, role="admin", user=user)
    client = Client()
    client.force_login(user)
    return a, b, user, client


SCOPED = [
    (model, model_admin)
    for model, model_admin in admin.site._registry.items()
    if isinstance(model_admin, TenantScopedAdmin) and issubclass(model, TenantOwned)
]


@pytest.mark.parametrize(("model", "model_admin"), SCOPED, ids=[m._meta.label for m, _ in SCOPED])
def test_no_admin_change_form_offers_the_tenant(model, model_admin, two_tenant_admin, rf):
    a, _b, user, _client = two_tenant_admin
    request = rf.get("/")
    request.user = User.objects.get(pk=user.pk)
    obj = model(tenant=a)
    assert "tenant" in model_admin.get_readonly_fields(request, obj)
    superuser = User(is_superuser=True, is_staff=True)
    request.user = superuser
    assert "tenant" in model_admin.get_readonly_fields(request, obj)


def test_posting_another_tenant_does_not_move_a_playbook(two_tenant_admin):
    a, b, _user, client = two_tenant_admin
    playbook = PlaybookFactory(tenant=a)
    data = {
        "tenant": b.pk,
        "name": "Moved?",
        "enabled": "on",
        "trigger": json.dumps(playbook.trigger),
        "action": json.dumps(ACTION),
        "cooldown_days": 14,
        "holdout_percent": 10,
        "review_expiry_hours": 72,
    }
    response = client.post(f"/admin/campaigns/playbook/{playbook.pk}/change/", data)
    assert response.status_code == 302
    playbook = Playbook.objects.unscoped().get(pk=playbook.pk)
    assert playbook.tenant_id == a.pk and playbook.name == "Moved?"


def test_posting_another_tenant_does_not_move_a_customer(two_tenant_admin):
    a, b, _user, client = two_tenant_admin
    customer = CustomerFactory(tenant=a, external_id="c1")
    data = {"tenant": b.pk, "external_id": "c1", "name": "N", "email": "", "attributes": "{}"}
    data["signed_up_at_0"], data["signed_up_at_1"] = "2025-01-01", "00:00:00"
    data["created_at_0"], data["created_at_1"] = "2025-01-01", "00:00:00"
    client.post(f"/admin/proactive/customer/{customer.pk}/change/", data)
    assert Customer.objects.unscoped().get(pk=customer.pk).tenant_id == a.pk


def test_a_reference_to_another_tenants_row_is_a_form_error(two_tenant_admin):
    from django import forms

    from accounts.admin_base import SameTenantReferencesForm
    from campaigns.admin import OutreachAdmin  # noqa: F401  (registered read-only; use the form directly)

    a, b, _user, _client = two_tenant_admin
    other = CustomerFactory(tenant=b)

    class OutreachForm(SameTenantReferencesForm):
        class Meta:
            model = Playbook.outreach_set.rel.related_model
            fields = ["tenant", "customer"]

    form = OutreachForm(data={"tenant": a.pk, "customer": other.pk})
    form.fields["customer"] = forms.ModelChoiceField(queryset=Customer.objects.unscoped())
    assert not form.is_valid()
    assert "another tenant" in str(form.errors["customer"])


def _tenant_form(tenant, **changes):
    data = {
        "name": tenant.name,
        "slug": tenant.slug,
        "timezone": "Europe/Paris",
        "prediction_target": "contact",
        "contact_signals": json.dumps(["support.contact"]),
        "activity_signals": json.dumps(["session.*"]),
        "horizon_days": 14,
        "budget_max_messages": 2,
        "budget_per_days": 7,
        "scoring_interval_minutes": 60,
        "training_interval_days": 7,
        "allowed_origins": json.dumps(["https://app.example.com"]),
    }
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("contact_signals", "123", "Expected a list"),
        ("contact_signals", json.dumps(["Not A Name"]), "is not a signal name"),
        ("contact_signals", json.dumps([]), "This field is required"),
        ("timezone", "Mars/Olympus", "is not an IANA time zone"),
        ("activity_signals", json.dumps("session.*"), "Expected a list"),
        ("allowed_origins", json.dumps(["javascript:alert(1)"]), "is not an origin"),
        ("horizon_days", "0", "greater than or equal to 1"),
        ("numeric_properties", json.dumps(["amount"]), "is not SIGNAL.PROPERTY"),
    ],
)
def test_the_admin_tenant_form_validates_like_the_api(admin_client_for, tenant, field, value, message):
    before = Tenant.objects.values().get(pk=tenant.pk)
    response = admin_client_for.post(
        f"/admin/accounts/tenant/{tenant.pk}/change/", _tenant_form(tenant, **{field: value})
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert "ErrorDetail" not in response.content.decode()  # plain messages, not reprs
    assert Tenant.objects.values().get(pk=tenant.pk) == before


def test_the_admin_tenant_form_saves_valid_settings(admin_client_for, tenant):
    response = admin_client_for.post(f"/admin/accounts/tenant/{tenant.pk}/change/", _tenant_form(tenant))
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.timezone == "Europe/Paris" and tenant.allowed_origins == ["https://app.example.com"]
    assert tenant.numeric_properties == []
    form = _tenant_form(tenant, numeric_properties=json.dumps(["purchase.amount"]))
    assert admin_client_for.post(f"/admin/accounts/tenant/{tenant.pk}/change/", form).status_code == 302
    tenant.refresh_from_db()
    assert tenant.numeric_properties == ["purchase.amount"]


def test_a_superuser_cannot_create_the_reserved_demo_tenant_in_the_admin(db):
    root = User.objects.create_superuser(email="root@x.test", password="pw")
    client = Client()
    client.force_login(root)
    response = client.post("/admin/accounts/tenant/add/", _tenant_form(Tenant(name="Demo", slug="demo")))
    assert response.status_code == 200 and "reserved" in response.content.decode()
    assert not Tenant.objects.filter(slug="demo").exists()


def test_a_demoted_or_removed_admin_loses_is_staff(tenant):
    other = TenantFactory(slug="other")
    user = User.objects.create_user(email="x@x.test", password="pw")
    membership_set(tenant=tenant, user=user, role=Membership.Role.ADMIN)
    membership_set(tenant=other, user=user, role=Membership.Role.ADMIN)
    assert User.objects.get(pk=user.pk).is_staff
    membership_set(tenant=tenant, user=user, role=Membership.Role.AGENT)
    assert User.objects.get(pk=user.pk).is_staff  # still admin of `other`
    Membership.objects.get(tenant=other, user=user).delete()
    assert not User.objects.get(pk=user.pk).is_staff


def test_a_role_change_in_the_admin_also_updates_is_staff(tenant):
    root = User.objects.create_superuser(email="root@x.test", password="pw")
    membership = MembershipFactory(tenant=tenant, role="admin")
    assert User.objects.get(pk=membership.user_id).is_staff
    client = Client()
    client.force_login(root)
    response = client.post(
        f"/admin/accounts/membership/{membership.pk}/change/",
        {
            "user": membership.user_id,
            "tenant": tenant.pk,
            "role": "viewer",
            "created_at_0": "2025-01-01",
            "created_at_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert not User.objects.get(pk=membership.user_id).is_staff


@pytest.fixture
def rf():
    return RequestFactory()
