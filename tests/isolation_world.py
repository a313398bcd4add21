"""Tenant B's objects, one of every tenant-owned model, marked so a leak is visible.

When a new tenant-owned model appears, add a row for it here: the probe fails until you do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.utils import timezone

from accounts.models import AuditLog, Membership, Tenant
from accounts.services import api_key_create
from campaigns.models import OutcomeSweep, OutreachEvent
from campaigns.outcomes import outcomes_sweep
from dashboard.snapshots import overview_refresh
from proactive.models import (
    CustomerAttributeChange,
    Insight,
    InsightRun,
    PageSnapshot,
    PipelineRun,
    RiskModel,
    RiskScore,
    RiskScoreDaily,
    SignalDaily,
    SignalHourly,
    SignalHourlyCoverage,
    SignalName,
    SignalRollupDelta,
    SignalValueCoverage,
    SignalValueDaily,
)
from tests.factories import (
    CampaignFactory,
    CustomerFactory,
    IncidentFactory,
    MembershipFactory,
    OutreachFactory,
    PlaybookFactory,
    SignalFactory,
    TenantFactory,
)
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

MARKER = "zzsecretofb"


@dataclass
class World:
    tenant_a: Tenant
    tenant_b: Tenant
    a_key: str
    objects: dict[type, object] = field(default_factory=dict)
    members: dict[str, Membership] = field(default_factory=dict)

    def of(self, model: type) -> object:
        return self.objects[model]


def build_world() -> World:
    now = timezone.now()
    a = TenantFactory(slug="tenant-a", name="Tenant A")
    b = TenantFactory(slug=f"tenant-b-{MARKER}", name=f"Tenant B {MARKER}")
    world = World(tenant_a=a, tenant_b=b, a_key=api_key_create(tenant=a).secret)
    for role in Membership.Role.values:
        world.members[role] = MembershipFactory(tenant=a, role=role, user__is_staff=role == "admin")
    b_member = MembershipFactory(
        tenant=b, role="admin", user__email=f"admin@{MARKER}.test", user__is_staff=True
    )
    customer = CustomerFactory(
        tenant=b, external_id=f"cust-{MARKER}", name=f"Customer {MARKER}", attributes={"plan": MARKER}
    )
    playbook = PlaybookFactory(tenant=b, name=f"Playbook {MARKER}")
    campaign = CampaignFactory(tenant=b, name=f"Campaign {MARKER}")
    incident = IncidentFactory(tenant=b, title=f"Incident {MARKER}")
    outreach = OutreachFactory(
        tenant=b, customer=customer, playbook=playbook, title=f"Outreach {MARKER}", status="sent", sent_at=now
    )
    model = RiskModel.objects.create(
        tenant=b, version=1, status="active", target="contact", horizon_days=14, as_of=now, notes=MARKER
    )
    insight_run = InsightRun.objects.create(
        tenant=b, as_of=now, status="computed", target="contact", horizon_days=14, base_rate=0.1
    )
    insight = Insight.objects.create(
        tenant=b,
        insight_run=insight_run,
        rank=1,
        kind="errors",
        condition={"metric": "count(error.zzsecretofb, 7)", "op": "gte", "value": 3},
        text=f"Customers with 3 or more `error.{MARKER}` in 7 days contact support 3.0x as often",
        customers_now=1,
        rate=0.3,
        base_rate=0.1,
        lift=3.0,
        ci_low=2.0,
        ci_high=4.5,
        p_value=0.0001,
        q_value=0.001,
        rows=40,
        reached=12,
    )
    objects = [
        b_member,
        insight_run,
        insight,
        customer,
        playbook,
        campaign,
        incident,
        outreach,
        model,
        api_key_create(tenant=b, name=f"Key {MARKER}").key,
        SignalFactory(tenant=b, customer=customer, key=f"sig-{MARKER}", name="error.zzsecretofb"),
        SignalDaily.objects.create(
            tenant=b,
            customer=customer,
            name="error.zzsecretofb",
            day=timezone.now().date(),
            count=3,
            last_at=now,
        ),
        SignalName.objects.create(tenant=b, name="error.zzsecretofb", total=3, first_seen=now, last_seen=now),
        SignalRollupDelta.objects.create(
            tenant=b, rows=json.dumps([[customer.pk, "error.zzsecretofb", now.isoformat()]])
        ),
        SignalHourly.objects.create(
            tenant=b,
            customer=customer,
            name="error.zzsecretofb",
            hour=now.replace(minute=0, second=0, microsecond=0),
            count=3,
            first_at=now,
            last_at=now,
        ),
        SignalHourlyCoverage.objects.create(tenant=b, patterns=["error.zzsecretofb"], since=now),
        SignalValueDaily.objects.create(
            tenant=b,
            customer=customer,
            name="error.zzsecretofb",
            key="amount",
            day=now.date(),
            total=9.5,
            count=2,
        ),
        SignalValueCoverage.objects.create(tenant=b, properties=["error.zzsecretofb.amount"]),
        CustomerAttributeChange.objects.create(
            tenant=b, customer=customer, valid_from=now, attributes={"plan": MARKER}
        ),
        RiskScore.objects.create(
            tenant=b,
            customer=customer,
            model=model,
            score=0.42,
            scored_at=now,
            reasons=[{"feature": MARKER, "value": 1, "contribution": 0.1}],
        ),
        RiskScoreDaily.objects.create(tenant=b, customer=customer, day=timezone.now().date(), score=0.42),
        PipelineRun.objects.create(
            tenant=b, kind="score", window_key=MARKER, as_of=now, summary={"m": MARKER}
        ),
        AuditLog.objects.create(tenant=b, action=f"probe.{MARKER}"),
        OutreachEvent.objects.create(tenant=b, outreach=outreach, kind="seen", data={"m": MARKER}),
    ]
    endpoint = WebhookEndpoint.objects.create(
        tenant=b, url=f"https://{MARKER}.example.com/hook", events=["outreach.sent"], secret=f"whsec_{MARKER}"
    )
    delivery = WebhookDelivery.objects.create(
        tenant=b, endpoint=endpoint, event_type="outreach.sent", event_key=f"outreach.sent:{outreach.pk}",
        payload={"type": "outreach.sent", "data": {"title": MARKER}}, last_error=MARKER,
    )  # fmt: skip
    attempt = WebhookAttempt.objects.create(
        tenant=b, delivery=delivery, number=1, started_at=now, error=MARKER, response_excerpt=MARKER
    )
    objects += [endpoint, delivery, attempt]
    # What B's pipeline runs leave behind for its pages.
    outcomes_sweep(tenant=b)
    overview_refresh(tenant=b)
    objects += [OutcomeSweep.objects.for_tenant(b).get(), PageSnapshot.objects.for_tenant(b).get()]
    for obj in objects:
        world.objects[type(obj)] = obj
    return world
