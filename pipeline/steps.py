"""The pipeline's steps, listed once, in order, by reference.

Every step has one signature, `step(run) -> counts`: the run carries the tenant and the
as-of time, and steps that report progress write it on the run. A renamed or removed
function fails at import, never as a silently skipped step.

Phases: a scheduled run does BEFORE_FANOUT in the run task, fans SCORE out to chunk tasks of
customers (pipeline.tasks), and the last chunk to finish runs AFTER_SCORE. A synchronous
run (`run_pipeline`) does all three in one process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from campaigns.campaign_sends import campaigns_send_due
from campaigns.firing import playbooks_evaluate
from campaigns.outcomes import outcomes_sweep
from dashboard.snapshots import overview_refresh
from proactive.insights.discovery import insight_metrics
from proactive.insights.service import insights_refresh
from proactive.models import PipelineRun
from proactive.scoring.registry import model_train_reusable
from proactive.scoring.scoring import Scorer, score_all
from proactive.scoring.training import training_metrics

Counts = dict[str, Any]


def step_features(run: PipelineRun) -> Counts:
    """Resolve the feature set the scorer will use (the active model's, or the health rules')."""
    scorer = Scorer.for_tenant(run.tenant)
    return {
        "features": len(scorer.names),
        "default_features": len(training_metrics(run.tenant, run.as_of)),
        "source": f"model v{scorer.model.version}" if scorer.model else "rule-based health score",
    }


REUSABLE = "_training_snapshots"  # the train step's snapshots, on the run object, for insights


def step_train(run: PipelineRun) -> Counts:
    # The insights step's features are computed in training's pass over the cut-offs.
    insight_names = [str(m) for m in insight_metrics(run.tenant, run.as_of)]
    model, reusable = model_train_reusable(tenant=run.tenant, as_of=run.as_of, extra_names=insight_names)
    setattr(run, REUSABLE, reusable)
    return {
        "version": model.version,
        "status": model.status,
        "training_rows": model.training_rows,
        "auc": model.metrics.get("auc"),
        "brier": model.metrics.get("brier"),
        "notes": model.notes,
    }


def step_insights(run: PipelineRun) -> Counts:
    reusable = getattr(run, REUSABLE, None)
    setattr(run, REUSABLE, None)  # tens of MB at 100,000 customers: not kept past this step
    return insights_refresh(tenant=run.tenant, as_of=run.as_of, run=run, reuse=reusable)


def step_score(run: PipelineRun) -> Counts:
    def progress(done: int, total: int, scored: int) -> None:
        PipelineRun.objects.for_tenant(run.tenant).filter(pk=run.pk).update(
            progress={**run.progress, "step": "score", "chunks_done": done, "chunks": total, "scored": scored}
        )

    return score_all(tenant=run.tenant, as_of=run.as_of, on_chunk=progress)


def step_playbooks(run: PipelineRun) -> Counts:
    return playbooks_evaluate(tenant=run.tenant, as_of=run.as_of, run=run)


def step_campaigns(run: PipelineRun) -> Counts:
    return campaigns_send_due(tenant=run.tenant, as_of=run.as_of)


def step_outcomes(run: PipelineRun) -> Counts:
    return outcomes_sweep(tenant=run.tenant, run=run)


def step_pages(run: PipelineRun) -> Counts:
    return overview_refresh(tenant=run.tenant, as_of=run.as_of, run=run)


@dataclass(frozen=True)
class Step:
    name: str
    fn: Callable[[PipelineRun], Counts]
    train_only: bool = False
    # A failed non-critical step is recorded and the run goes on (scoring with the old model).
    critical: bool = True


STEPS: tuple[Step, ...] = (
    Step("features", step_features),
    Step("train", step_train, train_only=True, critical=False),
    Step("insights", step_insights, train_only=True, critical=False),
    Step("score", step_score),
    Step("playbooks", step_playbooks),
    Step("campaigns", step_campaigns),
    # Pages read outcomes from here; a failure leaves them one sweep older, nothing else.
    Step("outcomes", step_outcomes, critical=False),
    Step("pages", step_pages, critical=False),
)
STEP_NAMES = tuple(step.name for step in STEPS)

BEFORE_FANOUT = ("features", "train", "insights")
SCORE = ("score",)
AFTER_SCORE = ("playbooks", "campaigns", "outcomes", "pages")
if BEFORE_FANOUT + SCORE + AFTER_SCORE != STEP_NAMES:
    raise RuntimeError("every pipeline step belongs to exactly one phase, in STEPS order")
