"""Every HTML page a tenant member, a staff user and the demo have, with something on it."""

from __future__ import annotations

from django.utils import timezone

from accounts.models import Membership, Tenant, User
from accounts.services import tenant_create
from campaigns.models import Outreach
from tests.dashboard.pages_world import build_pages_world
from tests.factories import CustomerFactory, IncidentFactory, MembershipFactory, OutreachFactory
from webhooks.models import WebhookEndpoint
from webhooks.signing import new_secret


def build_csp_world(tenant: Tenant) -> tuple[User, dict[str, str]]:
    """An admin member of `tenant` who is also staff, and name -> path of the pages to check."""
    world = build_pages_world(tenant)
    user = MembershipFactory(tenant=tenant, role=Membership.Role.ADMIN, user__email="ann@acme.test").user
    user.is_staff = user.is_superuser = True
    user.save(update_fields=["is_staff", "is_superuser"])
    incident = IncidentFactory(tenant=tenant)
    endpoint = WebhookEndpoint.objects.create(
        tenant=tenant,
        url="https://crm.example.com/hooks/proactive",
        events=["model.promoted"],
        secret=new_secret(),
    )
    item = Outreach.objects.for_tenant(tenant).filter(status=Outreach.Status.PENDING_REVIEW).first()
    assert item is not None
    slug = tenant.slug
    pages = {
        "overview": f"/t/{slug}/",
        "playbooks": f"/t/{slug}/playbooks/",
        "playbook": f"/t/{slug}/playbooks/{world.playbook.pk}/",
        "builder": f"/t/{slug}/playbooks/new/",
        "builder-edit": f"/t/{slug}/playbooks/{world.playbook.pk}/edit/",
        "campaigns": f"/t/{slug}/campaigns/",
        "campaign": f"/t/{slug}/campaigns/{world.campaign.pk}/",
        "campaign-new": f"/t/{slug}/campaigns/new/",
        "queue": f"/t/{slug}/queue/",
        "item": f"/t/{slug}/queue/{item.pk}/",
        "customers": f"/t/{slug}/customers/",
        "customer": f"/t/{slug}/customers/p001/",
        "model": f"/t/{slug}/model/",
        "runs": f"/t/{slug}/runs/",
        "run": f"/t/{slug}/runs/{world.run.pk}/",
        "fatigue": f"/t/{slug}/fatigue/",
        "incidents": f"/t/{slug}/incidents/",
        "incident": f"/t/{slug}/incidents/{incident.pk}/",
        "insights": f"/t/{slug}/insights/",
        "webhooks": f"/t/{slug}/webhooks/",
        "webhook": f"/t/{slug}/webhooks/{endpoint.pk}/",
        "keys": f"/t/{slug}/keys/",
        "admin": "/admin/",
        "admin-playbooks": "/admin/campaigns/playbook/",
        "admin-playbook": f"/admin/campaigns/playbook/{world.playbook.pk}/change/",
        "admin-playbook-add": "/admin/campaigns/playbook/add/",
        "admin-users": "/admin/accounts/user/",
        "admin-user": f"/admin/accounts/user/{user.pk}/change/",
        "admin-password": f"/admin/accounts/user/{user.pk}/password/",
        "demo": "/demo/app/?customer=demo-ada",
    }
    return user, pages


def build_demo_tenant() -> Tenant:
    """The demo tenant, with a customer who has an in-app message waiting (the widget shows it)."""
    demo, _ = tenant_create(slug="demo", name="Demo", reserved_ok=True)
    ada = CustomerFactory(tenant=demo, external_id="demo-ada", name="Ada")
    OutreachFactory(
        customer=ada,
        channel=Outreach.Channel.IN_APP,
        status=Outreach.Status.SENT,
        sent_at=timezone.now(),
        title="Your bank sync is failing",
        body="Reconnect the bank under **Settings**.",
    )
    return demo
