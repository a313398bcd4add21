"""Pipeline requests made from the pages."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import Tenant
from pipeline.tasks import pipeline_run_task
from proactive.models import PipelineRun


def run_now_request(*, tenant: Tenant, now: datetime | None = None) -> bool:
    """Queue a scoring run of every step for the tenant, after commit. One per 10 seconds: a
    double click, or two admins at once, share the run (its window key is the 10-second slot).
    False when that slot's run already exists."""
    now = now or timezone.now()
    window_key = f"manual:{int(now.timestamp()) // 10}"
    if (
        PipelineRun.objects.for_tenant(tenant)
        .filter(kind=PipelineRun.Kind.SCORE, window_key=window_key)
        .exists()
    ):
        return False
    transaction.on_commit(
        lambda: pipeline_run_task.apply_async(
            kwargs={
                "tenant_id": tenant.pk,
                "kind": PipelineRun.Kind.SCORE,
                "window_key": window_key,
                "as_of": now.isoformat(),
                "trigger": "manual",
            },
            expires=3600,
        )
    )
    return True
