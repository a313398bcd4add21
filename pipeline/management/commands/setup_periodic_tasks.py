"""Declare the beat schedule in code (run on deploy and by `make demo`).

One periodic row per job type; each fans out one task per due tenant, so the
database scheduler never holds a row per tenant.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django_celery_beat.models import IntervalSchedule, PeriodicTask

# name -> (task, every N seconds)
SCHEDULE: dict[str, tuple[str, int]] = {
    # Rollup deltas appended by ingestion are folded into the daily rollups (readers that must be
    # exact add the pending ones themselves; this keeps them few).
    "proactive:rollups_fold": ("proactive.rollups_fold", 10),
    # Tables that changed a lot since their last ANALYZE are analyzed (planner statistics, also
    # where autovacuum is off or has not caught up with a bulk load).
    "proactive:analyze_stale_tables": ("proactive.analyze_stale_tables", 60),
    # Each tick enqueues the tenants whose scoring window (Tenant.scoring_interval_minutes) has no run.
    "proactive:schedule_scoring": ("proactive.schedule_scoring", 300),
    # Each tick enqueues the tenants whose training window (Tenant.training_interval_days) has no run.
    "proactive:schedule_training": ("proactive.schedule_training", 3600),
    # Outreach waiting for review past its deadline expires; snoozed outreach returns to the queue.
    # https://crontab.guru/#*/5_*_*_*_*
    "proactive:outreach_expire_overdue": ("campaigns.outreach_expire_overdue", 300),
    # Campaigns whose send_at has passed are sent (audience frozen at that moment).
    # https://crontab.guru/#*_*_*_*_*
    "proactive:campaigns_send_due": ("campaigns.schedule_due_campaigns", 60),
    # Customers who newly match an open incident's condition get its notice.
    # https://crontab.guru/#*/5_*_*_*_*
    "proactive:incident_notices": ("campaigns.schedule_incident_notices", 300),
    # Webhook deliveries that are due but that no queued task carries (lost enqueue, dead worker).
    # https://crontab.guru/#*_*_*_*_*
    "proactive:webhooks_sweep": ("webhooks.sweep", 60),
    # Spikes in each tenant's monitored signals become suspected incidents (one run per tenant
    # per 5-minute window, however many beat processes tick).
    # https://crontab.guru/#*/5_*_*_*_*
    "proactive:monitoring": ("campaigns.schedule_monitoring", 300),
}


class Command(BaseCommand):
    help = "Create or update the periodic tasks."

    def handle(self, *args: object, **opts: object) -> None:
        for name, (task, seconds) in SCHEDULE.items():
            interval, _ = IntervalSchedule.objects.get_or_create(
                every=seconds, period=IntervalSchedule.SECONDS
            )
            PeriodicTask.objects.update_or_create(
                name=name, defaults={"task": task, "interval": interval, "enabled": True}
            )
        PeriodicTask.objects.exclude(name__in=SCHEDULE).filter(name__startswith="proactive:").delete()
        self.stdout.write(f"{len(SCHEDULE)} periodic tasks set up")
