import re

import pytest
from django.test import Client

from accounts.models import ApiKey, AuditLog, Membership
from proactive.models import Customer
from tests.factories import CustomerFactory, MembershipFactory, PlaybookFactory, TenantFactory, UserFactory


def test_the_login_page_renders(db):
    response = Client().get("/login/")
    assert response.status_code == 200
    assert b"Log in to Proactive" in response.content


@pytest.mark.parametrize(
    ("role", "landing"), [("agent", "/t/acme/queue/"), ("admin", "/t/acme/"), ("viewer", "/t/acme/")]
)
def test_logging_in_lands_on_the_users_tenant(tenant, role, landing):
    """Agents land on the review queue, everyone else on the overview."""
    MembershipFactory(tenant=tenant, user__email="ann@acme.test", role=role)
    client = Client()
    response = client.post("/login/", {"username": "ann@acme.test", "password": "pw"}, follow=True)
    assert response.redirect_chain[-1][0] == landing
    assert b"Acme" in response.content


def test_a_user_of_several_tenants_chooses_and_switches(db):
    user = UserFactory()
    for slug in ("one", "two"):
        MembershipFactory(user=user, tenant=TenantFactory(slug=slug, name=slug.title()), role="viewer")
    client = Client()
    client.force_login(user)
    page = client.get("/")
    assert page.status_code == 200 and b"/t/one/" in page.content and b"/t/two/" in page.content
    assert client.get("/t/two/").status_code == 200


def test_outsiders_get_404_and_anonymous_users_the_login(tenant):
    outsider = Client()
    outsider.force_login(UserFactory())
    assert outsider.get("/t/acme/").status_code == 404
    response = Client().get("/t/acme/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_an_admin_creates_and_revokes_a_key(admin_client_for, tenant):
    response = admin_client_for.post("/t/acme/keys/new/", {"name": "Backend"}, follow=True)
    secret = re.search(rb"sk_[0-9a-f]{8}_[A-Za-z0-9_-]+", response.content).group().decode()
    assert Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get("/api/v1/tenant").status_code == 200
    again = admin_client_for.get("/t/acme/keys/")
    assert secret.encode() not in again.content  # shown once
    key = ApiKey.objects.for_tenant(tenant).get(name="Backend")
    admin_client_for.post(f"/t/acme/keys/{key.prefix}/revoke/")
    assert Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get("/api/v1/tenant").status_code == 401
    actions = set(AuditLog.objects.for_tenant(tenant).values_list("action", flat=True))
    assert {"api_key.create", "api_key.revoke"} <= actions


@pytest.mark.parametrize("role", ["agent", "viewer"])
def test_keys_are_for_admins_only(tenant, role):
    client = Client()
    client.force_login(MembershipFactory(tenant=tenant, role=role).user)
    assert client.get("/t/acme/keys/").status_code == 403
    assert client.post("/t/acme/keys/new/", {"name": "x"}).status_code == 403


def test_htmx_posts_need_the_csrf_token(tenant):
    membership = MembershipFactory(tenant=tenant, role=Membership.Role.ADMIN)
    client = Client(enforce_csrf_checks=True)
    client.force_login(membership.user)
    assert client.post("/t/acme/keys/new/", {"name": "x"}, HTTP_HX_REQUEST="true").status_code == 403
    page = client.get("/t/acme/")
    token = re.search(rb'"X-CSRFToken": "([^"]+)"', page.content).group(1).decode()
    response = client.post("/t/acme/keys/new/", {"name": "x"}, HTTP_HX_REQUEST="true", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 302


def test_the_page_serves_htmx_from_the_project(tenant, viewer_client):
    page = viewer_client.get("/t/acme/").content.decode()
    assert re.search(r'<script src="/static/vendor/htmx\.min\.[0-9a-f]{12}\.js"', page)
    assert "unpkg" not in page and "cdn" not in page.lower()


@pytest.fixture
def two_tenant_admin(db):
    a, b = TenantFactory(slug="a"), TenantFactory(slug="b")
    admin_user = MembershipFactory(tenant=a, role="admin", user__is_staff=True).user
    CustomerFactory(tenant=a, name="Alice of A")
    CustomerFactory(tenant=b, name="Bob of B")
    PlaybookFactory(tenant=a, name="A playbook")
    client = Client()
    client.force_login(admin_user)
    return client, a, b


def test_a_tenant_admin_sees_only_their_tenant_in_the_admin(two_tenant_admin):
    client, a, b = two_tenant_admin
    page = client.get("/admin/proactive/customer/")
    assert page.status_code == 200
    assert b"Alice of A" in page.content and b"Bob of B" not in page.content
    tenants = client.get("/admin/accounts/tenant/")
    assert b"/admin/accounts/tenant/%d/change/" % a.pk in tenants.content
    assert b"/admin/accounts/tenant/%d/change/" % b.pk not in tenants.content


def test_admin_foreign_key_choices_are_scoped(two_tenant_admin):
    client, a, b = two_tenant_admin
    form = client.get("/admin/proactive/customer/add/").content.decode()
    assert f'value="{a.pk}"' in form and f'value="{b.pk}"' not in form

    def add(tenant, external_id):
        return client.post(
            "/admin/proactive/customer/add/",
            {
                "tenant": tenant.pk,
                "external_id": external_id,
                "attributes": "{}",
                "created_at_0": "2026-01-01",
                "created_at_1": "00:00",
                "updated_at_0": "2026-01-01",
                "updated_at_1": "00:00",
            },
        )

    assert add(a, "new-in-a").status_code == 302
    refused = add(b, "new-in-b")
    assert refused.status_code == 200 and b"Select a valid choice" in refused.content
    assert not Customer.objects.for_tenant(b).filter(external_id="new-in-b").exists()


def test_agents_cannot_open_the_admin(tenant):
    client = Client()
    client.force_login(MembershipFactory(tenant=tenant, role="agent").user)
    assert client.get("/admin/proactive/customer/").status_code == 302


def test_a_superuser_sees_every_tenant(two_tenant_admin):
    _, a, b = two_tenant_admin
    root = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(root)
    page = client.get("/admin/proactive/customer/")
    assert b"Alice of A" in page.content and b"Bob of B" in page.content
