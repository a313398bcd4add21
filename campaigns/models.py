"""Playbooks, campaigns, incidents and the outreach they create."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.scoping import TenantOwned


class Priority(models.IntegerChoices):
    LOW = 0, "low"
    NORMAL = 1, "normal"
    HIGH = 2, "high"
    URGENT = 3, "urgent"


class Playbook(TenantOwned):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    trigger = models.JSONField(help_text="Condition JSON: all/any/not and metric/op/value leaves.")
    action = models.JSONField(
        help_text="channel, title, body (Markdown), cta_label, cta_url, requires_review, priority"
    )
    cooldown_days = models.PositiveSmallIntegerField(default=14)
    holdout_percent = models.PositiveSmallIntegerField(default=10)
    review_expiry_hours = models.PositiveIntegerField(
        default=72, help_text="Outreach waiting for review longer than this expires."
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="playbook_tenant_name_uniq")]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Campaign(TenantOwned):
    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        CANCELLED = "cancelled", "Cancelled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    audience = models.JSONField(help_text="Condition JSON selecting the customers it is sent to.")
    action = models.JSONField()
    send_at = models.DateTimeField()
    holdout_percent = models.PositiveSmallIntegerField(default=10)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SCHEDULED)
    sent_at = models.DateTimeField(null=True, blank=True)
    audience_size = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["tenant", "status", "send_at"], name="campaign_tenant_due")]
        ordering = ["-send_at"]

    def __str__(self) -> str:
        return self.name


class Incident(TenantOwned):
    class Status(models.TextChoices):
        SUSPECTED = "suspected", "Suspected"
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"
        DISMISSED = "dismissed", "Dismissed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    component = models.CharField(max_length=100)
    title = models.CharField(max_length=200)
    affected = models.JSONField(help_text="Condition JSON selecting the affected customers.")
    notice = models.JSONField(help_text="Action sent to affected customers when the incident opens.")
    follow_up = models.JSONField(null=True, blank=True, help_text="Optional action sent on resolution.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    overrides_budget = models.BooleanField(default=True)
    opened_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Set by monitoring (campaigns.monitoring); empty/null for incidents opened by hand.
    detection = models.JSONField(null=True, blank=True, help_text="What the detector saw (contract shape).")
    monitored_signal = models.CharField(
        max_length=100,
        blank=True,
        help_text="The signal a detected incident watches (one active per signal).",
    )
    monitor_state = models.JSONField(
        default=dict, blank=True, help_text="Hourly observed/expected series and when the rate was last high."
    )

    class Meta:
        constraints = [
            # One suspected or open detected incident per signal: the next run updates it, and two
            # concurrent runs cannot both create one.
            models.UniqueConstraint(
                fields=["tenant", "monitored_signal"],
                condition=models.Q(status__in=["suspected", "open"]) & ~models.Q(monitored_signal=""),
                name="incident_one_active_per_signal",
            )
        ]
        indexes = [models.Index(fields=["tenant", "status"], name="incident_tenant_status")]
        ordering = ["-opened_at"]

    def __str__(self) -> str:
        return f"{self.component}: {self.title}"


class Outreach(TenantOwned):
    """One message to one customer, from a playbook, a campaign or an incident."""

    class Status(models.TextChoices):
        PENDING_REVIEW = "pending_review", "Pending review"
        SENT = "sent", "Sent"
        HELD_OUT = "held_out", "Held out"
        SUPPRESSED = "suppressed", "Suppressed"
        REJECTED = "rejected", "Rejected"
        SNOOZED = "snoozed", "Snoozed"
        EXPIRED = "expired", "Expired"

    class Channel(models.TextChoices):
        IN_APP = "in_app", "In-app"
        EMAIL = "email", "Email"

    class Feedback(models.TextChoices):
        HELPFUL = "helpful", "Helpful"
        NOT_HELPFUL = "not_helpful", "Not helpful"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Every index below leads with the tenant, so the foreign key needs none of its own: each
    # index is paid for on every one of the tens of thousands of rows a playbook run writes.
    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
    customer = models.ForeignKey("proactive.Customer", on_delete=models.CASCADE, db_index=False)
    playbook = models.ForeignKey(Playbook, null=True, blank=True, on_delete=models.SET_NULL, db_index=False)
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.SET_NULL, db_index=False)
    incident = models.ForeignKey(Incident, null=True, blank=True, on_delete=models.SET_NULL, db_index=False)
    dedupe_key = models.CharField(
        max_length=120, help_text="One outreach per source, customer and cooldown window (unique per tenant)."
    )
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.IN_APP)
    status = models.CharField(max_length=20, choices=Status.choices)
    holdout = models.BooleanField(default=False)
    priority = models.SmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
    risk_score = models.FloatField(null=True, blank=True)
    triggered_at = models.DateTimeField()
    context = models.JSONField(default=dict, blank=True, help_text="Metric values that made it fire.")
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    cta_label = models.CharField(max_length=100, blank=True)
    cta_url = models.URLField(max_length=500, blank=True)
    suppressed_reason = models.CharField(max_length=200, blank=True)
    reject_reason = models.CharField(max_length=500, blank=True)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    # Unindexed: only deleting a user (rare) looks rows up by these.
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_deadline = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    email_sent_at = models.DateTimeField(null=True, blank=True)
    seen_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    dismissed_at = models.DateTimeField(null=True, blank=True)
    feedback = models.CharField(max_length=12, choices=Feedback.choices, blank=True)
    feedback_at = models.DateTimeField(null=True, blank=True)
    first_contact_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="The customer's first contact signal in [triggered_at, triggered_at + 90 days), "
        "as known at the tenant's last outcomes sweep (campaigns.outcomes).",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "dedupe_key"], name="outreach_tenant_dedupe_uniq")
        ]
        indexes = [
            models.Index(fields=["tenant", "customer", "-triggered_at"], name="outreach_customer"),
            models.Index(fields=["tenant", "playbook", "triggered_at"], name="outreach_playbook"),
            models.Index(fields=["tenant", "campaign", "triggered_at"], name="outreach_campaign"),
            models.Index(fields=["tenant", "incident"], name="outreach_incident"),
            models.Index(fields=["tenant", "triggered_at"], name="outreach_tenant_triggered"),
            # The review queue's exact order (campaigns.queue.queue_ordering): a page is an index walk.
            models.Index(
                models.F("tenant"),
                models.F("status"),
                models.F("priority").desc(),
                models.F("risk_score").desc(nulls_last=True),
                models.F("triggered_at"),
                models.F("id"),
                name="outreach_review_order",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} -> {self.customer_id} ({self.status})"


class OutreachEvent(TenantOwned):
    """Engagement and agent actions on an outreach: seen, clicked, dismissed, feedback, edits, sends."""

    outreach = models.ForeignKey(Outreach, on_delete=models.CASCADE, db_index=False, related_name="events")
    kind = models.CharField(max_length=30)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["tenant", "outreach", "created_at"], name="outreachevent_outreach")]


class OutcomeSweep(TenantOwned):
    """When the tenant's outreach outcomes (`Outreach.first_contact_at`) were last brought up to
    date, and with which contact signals: pages count only windows that had elapsed by then."""

    swept_at = models.DateTimeField()
    contact_signals = models.JSONField(default=list)
    rows_checked = models.PositiveIntegerField(default=0)
    rows_changed = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="outcomesweep_tenant_uniq")]

    def __str__(self) -> str:
        return f"outcomes of tenant {self.tenant_id} as of {self.swept_at:%Y-%m-%d %H:%M}"
