"""Model versions per tenant: train, store the booster in the database, promote or reject.

A new model becomes active only if it is not worse on validation than the active one,
measured on the same held-out rows; the reason is written to `RiskModel.notes`.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

import xgboost as xgb
from django.db import transaction
from django.db.models import Max

from accounts.models import Tenant
from proactive.models import RiskModel
from proactive.scoring import model as ml
from proactive.scoring import training
from webhooks.services import event_emit

# "Not worse": the new AUC may trail by sampling noise at most, and so may its Brier score.
AUC_TOLERANCE = 0.005
BRIER_TOLERANCE = 0.002


def active_model(tenant: Tenant) -> RiskModel | None:
    return RiskModel.objects.for_tenant(tenant).filter(status=RiskModel.Status.ACTIVE).first()


def booster_bytes(booster: xgb.Booster) -> bytes:
    return bytes(booster.save_raw(raw_format="ubj"))


@lru_cache(maxsize=64)
def _load(model_pk: int, trained_at: str, raw: bytes) -> xgb.Booster:
    booster = xgb.Booster()
    booster.load_model(bytearray(raw))
    booster.set_param({"nthread": 2})
    return booster


def load_booster(model: RiskModel) -> xgb.Booster:
    """The model's booster, parsed once per process (a stored version never changes)."""
    raw = bytes(model.booster) if model.booster is not None else b""
    return _load(model.pk, model.trained_at.isoformat(), raw)


def compare(new: dict, old: dict) -> tuple[bool, str]:
    """Promotion rule on validation metrics of the same rows."""
    n_auc, o_auc, n_brier, o_brier = new.get("auc"), old.get("auc"), new.get("brier"), old.get("brier")
    if o_auc is None or o_brier is None:
        return True, "the active model has no comparable validation metrics"
    if n_auc is None or n_brier is None:
        return False, "the new model has no validation AUC"
    if n_auc < o_auc - AUC_TOLERANCE:
        return False, f"AUC {n_auc:.4f} is worse than the active model's {o_auc:.4f}"
    if n_brier > o_brier + BRIER_TOLERANCE:
        return False, f"Brier {n_brier:.5f} is worse than the active model's {o_brier:.5f}"
    return True, f"AUC {n_auc:.4f} vs {o_auc:.4f}, Brier {n_brier:.5f} vs {o_brier:.5f}: not worse"


def _next_version(tenant: Tenant) -> int:
    top = RiskModel.objects.for_tenant(tenant).aggregate(v=Max("version"))["v"]
    return (top or 0) + 1


def model_train(*, tenant: Tenant, as_of: datetime) -> RiskModel:
    """Train a new version and decide its status (active, rejected or insufficient_data)."""
    outcome = training.train(tenant=tenant, as_of=as_of)
    common = {
        "target": tenant.prediction_target,
        "horizon_days": tenant.horizon_days,
        "as_of": as_of,
        "feature_names": outcome.names,
    }
    with transaction.atomic():
        # Serialise version numbers and the one-active switch per tenant.
        Tenant.objects.select_for_update().filter(pk=tenant.pk).first()
        version = _next_version(tenant)
        if not outcome.ok:
            return RiskModel.objects.create(
                tenant=tenant,
                version=version,
                status=RiskModel.Status.INSUFFICIENT_DATA,
                metrics=outcome.metrics,
                notes=outcome.reason + ". Scores use the rule-based health score until a model is trained.",
                **common,
            )
        if outcome.fitted is None or outcome.evaluation is None:
            raise RuntimeError("a successful training outcome has a booster and evaluation rows")
        current = active_model(tenant)
        promote, why = True, "first model for this tenant"
        if current is not None and (
            current.target != tenant.prediction_target or current.horizon_days != tenant.horizon_days
        ):
            why = "the active model predicts a different target or horizon"
        elif current is not None:
            old_p = training.predict_snapshots(
                tenant=tenant,
                booster=load_booster(current),
                calibration=current.calibration,
                names=list(current.feature_names),
                evaluation=outcome.evaluation,
            )
            old = ml.evaluate(outcome.evaluation.y, old_p)
            outcome.metrics["active_model_on_same_rows"] = {"version": current.version, **old}
            promote, why = compare(outcome.metrics, old)
        if promote and current is not None:
            RiskModel.objects.for_tenant(tenant).filter(pk=current.pk, status=RiskModel.Status.ACTIVE).update(
                status=RiskModel.Status.RETIRED
            )
        model = RiskModel.objects.create(
            tenant=tenant,
            version=version,
            status=RiskModel.Status.ACTIVE if promote else RiskModel.Status.REJECTED,
            training_rows=outcome.training_rows,
            metrics=outcome.metrics,
            feature_importance=outcome.fitted.importance,
            calibration=outcome.calibration,
            booster=booster_bytes(outcome.fitted.booster),
            notes=("Promoted: " if promote else "Rejected: ") + why,
            **common,
        )
        if promote:
            model_promoted_emit(model)
        return model


def model_promoted_emit(model: RiskModel) -> int:
    """`model.promoted` for the tenant's webhooks, in the transaction that promoted it."""
    metrics = {k: model.metrics.get(k) for k in ("auc", "pr_auc", "brier", "base_rate")}
    data = {
        "version": model.version,
        "trained_at": model.trained_at.isoformat(),
        "as_of": model.as_of.isoformat(),
        "target": model.target,
        "horizon_days": model.horizon_days,
        "training_rows": model.training_rows,
        "metrics": metrics,
        "notes": model.notes,
    }
    return event_emit(
        tenant_id=model.tenant_id, event_type="model.promoted", key=f"model.promoted:{model.pk}", data=data
    )


def is_usable(model: RiskModel | None, tenant: Tenant) -> bool:
    return bool(
        model is not None
        and model.booster
        and model.target == tenant.prediction_target
        and model.horizon_days == tenant.horizon_days
    )
