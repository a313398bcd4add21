from __future__ import annotations

import factory
from django.utils import timezone

from accounts.models import Membership, Tenant, User
from campaigns.models import Campaign, Incident, Outreach, Playbook
from proactive.models import Customer, Signal


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.Sequence(lambda n: f"Tenant {n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.test")
    password = factory.PostGenerationMethodCall("set_password", "pw")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):  # noqa: N805
        if create:
            obj.save()


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    tenant = factory.SubFactory(TenantFactory)
    role = Membership.Role.AGENT


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    tenant = factory.SubFactory(TenantFactory)
    external_id = factory.Sequence(lambda n: f"cust-{n}")
    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.LazyAttribute(lambda o: f"{o.external_id}@customer.test")
    signed_up_at = factory.LazyFunction(timezone.now)


class SignalFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Signal

    customer = factory.SubFactory(CustomerFactory)
    tenant = factory.SelfAttribute("customer.tenant")
    key = factory.Sequence(lambda n: f"sig-{n}")
    name = "session.started"
    timestamp = factory.LazyFunction(timezone.now)


ACTION = {
    "channel": "in_app",
    "title": "Need a hand?",
    "body": "Hi {{ customer.name }}, here is a guide.",
    "cta_label": "Open the guide",
    "cta_url": "https://example.com/guide",
    "requires_review": False,
    "priority": "normal",
}


class PlaybookFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Playbook

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Playbook {n}")
    trigger = factory.LazyFunction(
        lambda: {"all": [{"metric": "count(error.*, 3)", "op": "gte", "value": 3}]}
    )
    action = factory.LazyFunction(lambda: dict(ACTION))


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Campaign {n}")
    audience = factory.LazyFunction(lambda: {"metric": "attribute.api_version", "op": "eq", "value": "v1"})
    action = factory.LazyFunction(lambda: dict(ACTION))
    send_at = factory.LazyFunction(timezone.now)


class IncidentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Incident

    tenant = factory.SubFactory(TenantFactory)
    component = "sync"
    title = "Sync is failing"
    affected = factory.LazyFunction(lambda: {"metric": "count(error.sync_*, 1)", "op": "gte", "value": 1})
    notice = factory.LazyFunction(lambda: dict(ACTION))


class OutreachFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Outreach

    customer = factory.SubFactory(CustomerFactory)
    tenant = factory.SelfAttribute("customer.tenant")
    playbook = factory.SubFactory(PlaybookFactory, tenant=factory.SelfAttribute("..tenant"))
    dedupe_key = factory.Sequence(lambda n: f"test:{n}")
    status = Outreach.Status.PENDING_REVIEW
    triggered_at = factory.LazyFunction(timezone.now)
    title = factory.Sequence(lambda n: f"Outreach {n}")
    body = "Hello"
