"""Model versions per tenant: train, store the booster in the database, promote or reject.

A new model becomes active only if, on the same held-out validation rows, it is not worse than
the best of the baselines fitted in the same run, nor than the active model on the rows that
model never trained on; the reason is written to `RiskModel.notes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import lru_cache

import numpy as np
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
# Against a baseline on the same rows the noise is measured: the project may trail by at most
# this many standard errors of the paired difference (or the fixed tolerance, if larger).
NOISE_SE = 2.0


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


def compare(
    new: dict, old: dict, other: str = "the active model", worse: dict | None = None
) -> tuple[bool, str]:
    """Promotion rule on validation metrics of the same rows. `worse` (paired differences with
    their standard errors) widens the tolerances to the sampling noise of these rows."""
    n_auc, o_auc, n_brier, o_brier = new.get("auc"), old.get("auc"), new.get("brier"), old.get("brier")
    if o_auc is None or o_brier is None:
        return True, f"{other} has no comparable validation metrics"
    if n_auc is None or n_brier is None:
        return False, "the new model has no validation AUC"
    worse = worse or {}
    auc_margin = max(AUC_TOLERANCE, NOISE_SE * worse.get("auc_se", 0.0))
    brier_margin = max(BRIER_TOLERANCE, NOISE_SE * worse.get("brier_se", 0.0))
    if n_auc < o_auc - auc_margin:
        return False, f"AUC {n_auc:.4f} is worse than {other}'s {o_auc:.4f}"
    if n_brier > o_brier + brier_margin:
        return False, f"Brier {n_brier:.5f} is worse than {other}'s {o_brier:.5f}"
    return (
        True,
        f"AUC {n_auc:.4f} vs {o_auc:.4f}, Brier {n_brier:.5f} vs {o_brier:.5f} for {other}: not worse",
    )


def compare_baselines(new: dict) -> tuple[bool, str]:
    """Not worse than any baseline on the same validation rows, beyond sampling noise (paired
    standard errors) or the fixed tolerances, whichever is larger."""
    baselines = {k: v for k, v in (new.get("baselines") or {}).items() if v.get("auc") is not None}
    if not baselines:
        return True, "no baseline could be fitted"
    if new.get("auc") is None or new.get("brier") is None:
        return False, "the new model has no validation AUC"
    for name, base in sorted(baselines.items(), key=lambda kv: -kv[1]["auc"]):
        ok, why = compare(new, base, other=f"the {name} baseline", worse=base.get("project_worse_by"))
        if not ok:
            return ok, why
    best_name, best = max(baselines.items(), key=lambda kv: kv[1]["auc"])
    return True, f"AUC {new['auc']:.4f} vs {best['auc']:.4f} for the best baseline ({best_name}): not worse"


def _compare_with_active(tenant: Tenant, current: RiskModel, outcome: training.Outcome) -> tuple[bool, str]:
    """The active model on the evaluation rows whose label windows it never saw (a refitted model
    trained on every cut-off closed at its own as-of; comparing it on those would flatter it)."""
    ev, selected = outcome.evaluation, outcome.selected
    if ev is None or selected is None:
        raise RuntimeError("a successful training outcome has evaluation rows and a selection fit")
    if "refit_rows" in current.metrics:
        # Refitted on every closed cut-off, it saw more recent labels than the new model's
        # selection fit, and on rows it never saw the new one cannot be measured: the same
        # run's baselines are the comparison.
        return (
            True,
            f"the active v{current.version} was refitted on every closed cut-off: judged by the baselines",
        )
    seen_until = (current.as_of - timedelta(days=current.horizon_days)).timestamp()
    unseen = np.array([c.timestamp() > seen_until for c in ev.cutoffs])[ev.cutoff_index]
    rows = ev.take(unseen)
    if not 0 < rows.y.sum() < len(rows.y):
        return (
            True,
            f"the active model v{current.version} trained on every validation cut-off: no fair comparison",
        )
    old_p = training.predict_snapshots(
        tenant=tenant,
        booster=load_booster(current),
        calibration=current.calibration,
        names=list(current.feature_names),
        evaluation=rows,
    )
    new_p = ml.predict(selected.booster, outcome.calibration, outcome.names, rows.x)
    old = ml.evaluate(rows.y, old_p)
    new = ml.evaluate(rows.y, new_p)
    worse = ml.paired_difference(rows.y, new_p, old_p)
    outcome.metrics["active_model_on_same_rows"] = {"version": current.version, "rows": len(rows.y), **old}
    outcome.metrics["new_model_on_same_rows"] = {**new, "worse_by": worse}
    return compare(new, old, worse=worse)


def _next_version(tenant: Tenant) -> int:
    top = RiskModel.objects.for_tenant(tenant).aggregate(v=Max("version"))["v"]
    return (top or 0) + 1


def model_train(*, tenant: Tenant, as_of: datetime) -> RiskModel:
    """Train a new version and decide its status (active, rejected or insufficient_data)."""
    return model_train_reusable(tenant=tenant, as_of=as_of)[0]


def model_train_reusable(
    *, tenant: Tenant, as_of: datetime, extra_names: Sequence[str] = ()
) -> tuple[RiskModel, training.Reusable | None]:
    """`model_train`, and the training snapshots (with the features `extra_names` too) for the
    insights step of the same run."""
    outcome = training.train(tenant=tenant, as_of=as_of, extra_names=extra_names)
    reusable = (
        training.Reusable(tenant.prediction_target, tenant.horizon_days, as_of, outcome.snapshots)
        if outcome.snapshots is not None
        else None
    )
    return _model_store(tenant=tenant, as_of=as_of, outcome=outcome), reusable


def _model_store(*, tenant: Tenant, as_of: datetime, outcome: training.Outcome) -> RiskModel:
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
        promote, why = compare_baselines(outcome.metrics)
        if promote:
            if current is None:
                second = True, "first model for this tenant"
            elif current.target != tenant.prediction_target or current.horizon_days != tenant.horizon_days:
                second = True, "the active model predicts a different target or horizon"
            else:
                second = _compare_with_active(tenant, current, outcome)
            promote, why = second[0], (f"{why}; {second[1]}" if second[0] else second[1])
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
