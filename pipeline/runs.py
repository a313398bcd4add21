"""Pipeline runs: claim a (tenant, kind, window), run the steps in order, record the outcome.

`window_key` makes scheduled runs idempotent: the (tenant, kind, window_key) unique
constraint lets exactly one scheduler claim a window. The steps are in pipeline.steps.
"""

from __future__ import annotations

import time
import traceback
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import Tenant
from pipeline.steps import STEP_NAMES, STEPS
from proactive.maintenance import analyze_stale_tables
from proactive.models import PipelineRun

# A claimed run that has been "running" this long died with its worker: it may be taken over.
STALE_AFTER = timedelta(minutes=40)


def run_claim(
    *, tenant: Tenant, kind: str, as_of: datetime, window_key: str, trigger: str, claimant: str | None = None
) -> PipelineRun | None:
    """Claim (tenant, kind, window): None when another worker has it or it already succeeded.

    `claimant` is the delivery's task id. Celery hands a task id to one worker at a time and
    redelivers it only after that worker was lost (`acks_late`, `reject_on_worker_lost`), so
    the same id finding its own run still "running" before the fan-out means the first attempt
    died: it takes over at once instead of blocking the window for STALE_AFTER. After the
    fan-out the chunk tasks carry the run, and the redelivery leaves it to them.
    """
    try:
        with transaction.atomic():
            return PipelineRun.objects.create(
                tenant=tenant,
                kind=kind,
                as_of=as_of,
                window_key=window_key,
                trigger=trigger,
                progress={"claimant": claimant} if claimant else {},
            )
    except IntegrityError:
        pass
    existing = PipelineRun.objects.for_tenant(tenant).get(kind=kind, window_key=window_key)
    now = timezone.now()
    running = existing.status == PipelineRun.Status.RUNNING
    redelivered = (
        running and claimant is not None and existing.progress.get("claimant") == claimant
    ) and not existing.progress.get("fanned_out")
    retryable = (
        existing.status == PipelineRun.Status.FAILED
        or (running and existing.started_at < now - STALE_AFTER)
        or redelivered
    )
    if not retryable:
        return None
    attempt = int(existing.progress.get("attempt", 1)) + 1
    taken = (
        PipelineRun.objects.for_tenant(tenant)
        .filter(pk=existing.pk, status=existing.status, started_at=existing.started_at)
        .update(
            status=PipelineRun.Status.RUNNING,
            started_at=now,
            finished_at=None,
            error="",
            steps=[],
            progress={"attempt": attempt, **({"claimant": claimant} if claimant else {})},
        )
    )
    if taken != 1:
        return None
    existing.refresh_from_db()
    return existing


def run_steps(run: PipelineRun, names: tuple[str, ...] = STEP_NAMES) -> bool:
    """Run the named steps (default all that apply) in order; False once a critical step failed."""
    unknown = set(names) - set(STEP_NAMES)
    if unknown:
        raise ValueError(f"unknown pipeline steps: {sorted(unknown)}")
    tenant = run.tenant
    analyze_stale_tables()  # plans from statistics that know this tenant's latest bulk load
    for step in STEPS:
        if step.name not in names or (step.train_only and run.kind != PipelineRun.Kind.TRAIN):
            continue
        started = time.perf_counter()
        record: dict[str, Any] = {"name": step.name}
        try:
            record.update(status="ok", counts=step.fn(run) or {})
        except Exception as exc:  # noqa: BLE001 - recorded on the run for the tenant admin to see
            if not connection.in_atomic_block:  # a broken connection must not fail the next steps
                connection.close_if_unusable_or_obsolete()
            record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            run.error = (run.error + "\n" if run.error else "") + traceback.format_exc(limit=8)
        record["seconds"] = round(time.perf_counter() - started, 3)
        run.steps = [*run.steps, record]
        PipelineRun.objects.for_tenant(tenant).filter(pk=run.pk).update(steps=run.steps, error=run.error)
        if record["status"] == "failed" and step.critical:
            return False
    return True


def run_finish(run: PipelineRun, ok: bool) -> PipelineRun:
    """A run succeeds only when no step failed (a failed training still lets scoring run)."""
    run.status = PipelineRun.Status.SUCCEEDED if ok and not run.error else PipelineRun.Status.FAILED
    run.finished_at = timezone.now()
    run.summary = summarize(run)
    PipelineRun.objects.for_tenant(run.tenant).filter(pk=run.pk).update(
        status=run.status, finished_at=run.finished_at, summary=run.summary
    )
    return run


def summarize(run: PipelineRun) -> dict[str, Any]:
    return {
        "tenant": run.tenant.slug,
        "run": run.pk,
        "kind": run.kind,
        "trigger": run.trigger,
        "as_of": run.as_of.isoformat(),
        "status": run.status,
        "seconds": round((run.finished_at - run.started_at).total_seconds(), 3) if run.finished_at else None,
        "steps": run.steps,
    }


def run_pipeline(
    *,
    tenant: Tenant,
    as_of: datetime | None = None,
    train: bool = False,
    trigger: str = "manual",
    window_key: str | None = None,
) -> PipelineRun | None:
    """Run every step synchronously. Returns None when the window was already claimed."""
    as_of = as_of or timezone.now()
    kind = PipelineRun.Kind.TRAIN if train else PipelineRun.Kind.SCORE
    run = run_claim(
        tenant=tenant,
        kind=kind,
        as_of=as_of,
        window_key=window_key or f"manual:{uuid.uuid4().hex}",
        trigger=trigger,
    )
    if run is None:
        return None
    return run_finish(run, run_steps(run))


def window_key_for(tenant: Tenant, kind: str, now: datetime) -> tuple[str, datetime]:
    """The schedule window containing `now` and its start (the run's as-of)."""
    if kind == PipelineRun.Kind.TRAIN:
        seconds = max(1, tenant.training_interval_days) * 86400
    else:
        seconds = max(1, tenant.scoring_interval_minutes) * 60
    start = int(now.timestamp()) // seconds * seconds
    return f"{seconds}s:{start}", datetime.fromtimestamp(start, tz=now.tzinfo)
