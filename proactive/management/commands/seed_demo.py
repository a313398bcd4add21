"""Create (or refresh) the demo tenant with an admin and an agent login. Idempotent."""

from __future__ import annotations

import os

from django.core.management.base import BaseCommand

from accounts.models import Membership, Tenant
from accounts.services import membership_set, tenant_create, user_get_or_create
from proactive.demo_data import generate_demo_data
from proactive.models import Customer

DEMO_SLUG = "demo"
ADMIN = ("admin@demo.test", "demo-admin-pass")
AGENT = ("agent@demo.test", "demo-agent-pass")


class Command(BaseCommand):
    help = "Seed the demo tenant and its logins."

    def handle(self, *args: object, **opts: object) -> str:
        tenant = Tenant.objects.filter(slug=DEMO_SLUG).first()
        if tenant is None:
            tenant, _ = tenant_create(slug=DEMO_SLUG, name="Demo Software Inc.")
        tenant.allowed_origins = ["http://127.0.0.1:8000", "http://localhost:8000"]
        tenant.save(update_fields=["allowed_origins"])
        admin = user_get_or_create(email=ADMIN[0], password=ADMIN[1])
        membership_set(tenant=tenant, user=admin, role=Membership.Role.ADMIN)
        agent = user_get_or_create(email=AGENT[0], password=AGENT[1])
        membership_set(tenant=tenant, user=agent, role=Membership.Role.AGENT)
        if not Customer.objects.for_tenant(tenant).exists():
            customers = int(os.environ.get("DEMO_CUSTOMERS", "2000"))
            summary = generate_demo_data(tenant=tenant, customers=customers, days=120, seed=1)
            self.stderr.write(
                f"Demo data: {summary.customers} customers, {summary.signals_stored} signals over 120 days"
            )
        return f"Logins: admin {ADMIN[0]} / {ADMIN[1]}   agent {AGENT[0]} / {AGENT[1]}"
