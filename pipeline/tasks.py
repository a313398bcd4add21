"""Scheduled pipeline work: one periodic entry per job type fans out one task per due tenant;
scoring fans out chunk tasks of thousands of customers and the last chunk to finish
continues the run (no result backend needed)."""

from __future__ import annotations

import time
from datetime import datetime

from celery import Task, shared_task
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from accounts.models import Tenant
from pipeline.runs import STALE_AFTER, run_claim, run_finish, run_steps, window_key_for
from pipeline.steps import AFTER_SCORE, BEFORE_FANOUT, SCORE
from proactive.chunks import CHUNK_SIZE, customer_id_ranges
from proactive.models import PipelineRun, RiskModel
from proactive.scoring.scoring import Scorer, score_range

TASK_OPTS = {"acks_late": True, "ignore_result": True}


def _schedule(kind: str, now: datetime) -> int:
    """Enqueue one pipeline task per tenant whose current window has no run yet."""
    due: dict[tuple[int, str], datetime] = {}
    for tenant in Tenant.objects.only("pk", "scoring_interval_minutes", "training_interval_days"):
        key, as_of = window_key_for(tenant, kind, now)
        due[(tenant.pk, key)] = as_of
    # A window is taken while its run succeeded or is still alive; a failed run, or one whose
    # worker died (running past STALE_AFTER), is enqueued again and run_claim takes it over.
    claimed = set(
        PipelineRun.objects.unscoped()
        .filter(kind=kind, window_key__in={key for _, key in due})
        .filter(
            Q(status=PipelineRun.Status.SUCCEEDED)
            | Q(status=PipelineRun.Status.RUNNING, started_at__gte=now - STALE_AFTER)
        )
        .values_list("tenant_id", "window_key")
    )
    sent = 0
    for (tenant_id, key), as_of in due.items():
        if (tenant_id, key) in claimed:
            continue
        pipeline_run_task.apply_async(
            kwargs={"tenant_id": tenant_id, "kind": kind, "window_key": key, "as_of": as_of.isoformat()},
            expires=3600,
        )
        sent += 1
    return sent


@shared_task(name="proactive.schedule_scoring", **TASK_OPTS)
def schedule_scoring_task(**kwargs: object) -> int:
    return _schedule(PipelineRun.Kind.SCORE, timezone.now())


@shared_task(name="proactive.schedule_training", **TASK_OPTS)
def schedule_training_task(**kwargs: object) -> int:
    return _schedule(PipelineRun.Kind.TRAIN, timezone.now())


@shared_task(name="proactive.pipeline_run", bind=True, **TASK_OPTS)
def pipeline_run_task(
    self: Task,
    *,
    tenant_id: int,
    kind: str,
    window_key: str,
    as_of: str,
    chunk_size: int = CHUNK_SIZE,
    trigger: str = "schedule",
    **kwargs: object,
) -> None:
    tenant = Tenant.objects.get(pk=tenant_id)
    run = run_claim(
        tenant=tenant,
        kind=kind,
        as_of=datetime.fromisoformat(as_of),
        window_key=window_key,
        trigger=trigger,
        claimant=self.request.id,
    )
    if run is None:
        return
    if not run_steps(run, BEFORE_FANOUT):
        run_finish(run, ok=False)
        return
    chunks = customer_id_ranges(tenant, chunk_size)
    if len(chunks) <= 1:
        run_finish(run, run_steps(run, SCORE + AFTER_SCORE))
        return
    model = Scorer.for_tenant(tenant).model
    run.progress = {
        **run.progress,
        "step": "score",
        "fanned_out": True,
        "chunks": len(chunks),
        "done": [],
        "scored": 0,
        "score_started": time.time(),
        "model_id": model.pk if model else None,
    }
    PipelineRun.objects.for_tenant(tenant).filter(pk=run.pk).update(progress=run.progress)
    for index, (lo, hi) in enumerate(chunks):
        score_chunk_task.apply_async(
            kwargs={"run_id": run.pk, "tenant_id": tenant_id, "index": index, "lo": lo, "hi": hi}
        )


@shared_task(name="proactive.score_chunk", **TASK_OPTS)
def score_chunk_task(*, run_id: int, tenant_id: int, index: int, lo: int, hi: int, **kwargs: object) -> None:
    tenant = Tenant.objects.get(pk=tenant_id)
    run = PipelineRun.objects.for_tenant(tenant).filter(pk=run_id, status=PipelineRun.Status.RUNNING).first()
    if run is None:
        return
    model_id = run.progress.get("model_id")
    model = RiskModel.objects.for_tenant(tenant).filter(pk=model_id).first() if model_id else None
    scorer = Scorer.for_tenant(tenant, model) if model else Scorer.for_tenant(tenant)
    written = score_range(scorer, lo, hi, run.as_of)
    # Mark this chunk done once (a retried chunk re-upserts the same rows but is not re-counted).
    with connection.cursor() as cur:
        cur.execute(
            f"""
            UPDATE {PipelineRun._meta.db_table}
            SET progress = progress
                || jsonb_build_object('done', (progress->'done') || to_jsonb(%s::int))
                || jsonb_build_object('scored', coalesce((progress->>'scored')::int, 0) + %s)
            WHERE id = %s AND tenant_id = %s AND NOT ((progress->'done') @> to_jsonb(%s::int))
            RETURNING jsonb_array_length(progress->'done'), (progress->>'chunks')::int
            """,  # noqa: S608
            [index, written, run_id, tenant_id, index],
        )
        row = cur.fetchone()
        if row is None:
            # Already counted: a redelivery. If the worker died between marking the last chunk
            # and enqueueing the finish, finish now (pipeline_finish_task is idempotent).
            cur.execute(
                f"SELECT jsonb_array_length(progress->'done'), (progress->>'chunks')::int "  # noqa: S608
                f"FROM {PipelineRun._meta.db_table} WHERE id = %s AND tenant_id = %s",
                [run_id, tenant_id],
            )
            done, total = cur.fetchone()
            if done >= total:
                pipeline_finish_task.apply_async(kwargs={"run_id": run_id, "tenant_id": tenant_id})
            return
        if row[0] < row[1]:
            return
        cur.execute(
            f"UPDATE {PipelineRun._meta.db_table} SET progress = progress || '{{\"finishing\": true}}' "  # noqa: S608
            "WHERE id = %s AND tenant_id = %s AND NOT (progress ? 'finishing')",
            [run_id, tenant_id],
        )
        if cur.rowcount != 1:
            return
    pipeline_finish_task.apply_async(kwargs={"run_id": run_id, "tenant_id": tenant_id})


@shared_task(name="proactive.pipeline_finish", **TASK_OPTS)
def pipeline_finish_task(*, run_id: int, tenant_id: int, **kwargs: object) -> None:
    tenant = Tenant.objects.get(pk=tenant_id)
    run = PipelineRun.objects.for_tenant(tenant).filter(pk=run_id, status=PipelineRun.Status.RUNNING).first()
    if run is None:
        return
    if not any(s["name"] == "score" for s in run.steps):
        progress = run.progress
        model = RiskModel.objects.for_tenant(tenant).filter(pk=progress.get("model_id") or 0).first()
        run.steps = [
            *run.steps,
            {
                "name": "score",
                "status": "ok",
                "counts": {
                    "scored": progress.get("scored", 0),
                    "chunks": progress.get("chunks"),
                    "model_version": model.version if model else None,
                    "rule_based": model is None,
                },
                "seconds": round(time.time() - progress.get("score_started", time.time()), 3),
            },
        ]
        PipelineRun.objects.for_tenant(tenant).filter(pk=run.pk).update(steps=run.steps)
    run_finish(run, run_steps(run, AFTER_SCORE))
