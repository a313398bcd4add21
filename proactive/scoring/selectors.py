"""Reads for risk scores and models."""

from __future__ import annotations

from typing import Any

import numpy as np
import xgboost as xgb

from accounts.models import Tenant
from proactive.models import Customer, RiskModel, RiskScore
from proactive.scoring import model as ml
from proactive.scoring.features import model_rows
from proactive.scoring.registry import load_booster

MODEL_METRICS = ("auc", "pr_auc", "brier", "base_rate")
BASELINE_METRICS = ("auc", "pr_auc", "brier", "calibration_error", "distinct_scores")


def exact_reasons(*, tenant: Tenant, model: RiskModel, customer: Customer, as_of) -> list[dict]:
    """Exact TreeSHAP contributions for one customer (costly, so only where a person looks)."""
    names = list(model.feature_names)
    x = model_rows(
        tenant=tenant,
        as_of=as_of,
        names=names,
        customer_ids=np.array([customer.pk]),
        fitted=model.calibration,
    )
    contribs = load_booster(model).predict(xgb.DMatrix(x, missing=np.nan), pred_contribs=True)
    return ml.top_reasons(contribs, x, names, k=5)[0]


def customer_risk(tenant: Tenant, customer: Customer) -> dict[str, Any] | None:
    """The customer's latest risk with reasons (exact contributions when a model scored it)."""
    row = RiskScore.objects.for_tenant(tenant).filter(customer_id=customer.pk).select_related("model").first()
    if row is None:
        return None
    reasons = row.reasons
    if row.model is not None and row.model.booster:
        reasons = exact_reasons(tenant=tenant, model=row.model, customer=customer, as_of=row.scored_at)
    return {
        "score": row.score,
        "scored_at": row.scored_at,
        "model_version": row.model.version if row.model else None,
        "rule_based": row.rule_based,
        "reasons": reasons,
    }


def model_as_contract(model: RiskModel) -> dict[str, Any]:
    return {
        "version": model.version,
        "status": model.status,
        "trained_at": model.trained_at,
        "as_of": model.as_of,
        "horizon_days": model.horizon_days,
        "training_rows": model.training_rows,
        "active": model.status == RiskModel.Status.ACTIVE,
        "metrics": {
            **{k: model.metrics.get(k) for k in MODEL_METRICS},
            "baselines": {
                name: {k: values.get(k) for k in BASELINE_METRICS}
                for name, values in (model.metrics.get("baselines") or {}).items()
            },
        },
        "feature_importance": model.feature_importance,
        "notes": model.notes,
    }
