"""XGBoost training, calibration and evaluation as plain functions: arrays in, numbers out."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xgboost as xgb
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

PARAMS: dict = {
    "objective": "binary:logistic",
    "tree_method": "hist",
    "max_depth": 5,
    "eta": 0.1,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 5,
    "max_bin": 128,
    "eval_metric": "logloss",
    "nthread": 2,
    "seed": 7,
}
MAX_ROUNDS = 300
EARLY_STOPPING = 20
# Isotonic needs enough positives to be smoother than it is noisy; below this, Platt.
ISOTONIC_MIN_POSITIVES = 200


@dataclass
class Fitted:
    booster: xgb.Booster
    best_iteration: int
    importance: dict[str, float] = field(default_factory=dict)


def fit(
    x_train: np.ndarray, y_train: np.ndarray, x_stop: np.ndarray, y_stop: np.ndarray, names: list[str]
) -> Fitted:
    """Hist boosting with early stopping on a later time slice (never on the training rows)."""
    dtrain = xgb.DMatrix(x_train, label=y_train, missing=np.nan, nthread=2)
    dstop = xgb.DMatrix(x_stop, label=y_stop, missing=np.nan, nthread=2)
    booster = xgb.train(
        PARAMS,
        dtrain,
        num_boost_round=MAX_ROUNDS,
        evals=[(dstop, "stop")],
        early_stopping_rounds=EARLY_STOPPING,
        verbose_eval=False,
    )
    best = int(booster.best_iteration)
    booster = booster[: best + 1]
    gain = booster.get_score(importance_type="total_gain")
    total = sum(gain.values()) or 1.0
    importance = {names[int(k[1:])]: round(v / total, 6) for k, v in gain.items()}
    importance = dict(sorted(importance.items(), key=lambda kv: -kv[1]))
    return Fitted(booster=booster, best_iteration=best, importance=importance)


def margins(booster: xgb.Booster, x: np.ndarray) -> np.ndarray:
    return booster.inplace_predict(x, predict_type="margin", missing=np.nan).astype(np.float64)


def calibration_fit(margin: np.ndarray, y: np.ndarray) -> dict:
    """Map raw margins to probabilities, fitted on rows the booster never trained on."""
    if y.sum() >= ISOTONIC_MIN_POSITIVES and (len(y) - y.sum()) >= ISOTONIC_MIN_POSITIVES:
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(margin, y)
        return {
            "method": "isotonic",
            "x": [float(v) for v in iso.X_thresholds_],
            "y": [float(v) for v in iso.y_thresholds_],
        }
    lr = LogisticRegression(C=1e4).fit(margin.reshape(-1, 1), y)
    return {"method": "platt", "a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}


def calibration_apply(calibration: dict, margin: np.ndarray) -> np.ndarray:
    if calibration.get("method") == "isotonic":
        return np.interp(margin, np.asarray(calibration["x"]), np.asarray(calibration["y"]))
    if calibration.get("method") == "platt":
        return 1.0 / (1.0 + np.exp(-(calibration["a"] * margin + calibration["b"])))
    return 1.0 / (1.0 + np.exp(-margin))


def evaluate(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    """AUC, PR-AUC, Brier and base rate; AUCs are None when only one class is present."""
    both = 0 < y.sum() < len(y)
    return {
        "auc": round(float(roc_auc_score(y, p)), 4) if both else None,
        "pr_auc": round(float(average_precision_score(y, p)), 4) if both else None,
        "brier": round(float(brier_score_loss(y, p)), 5) if len(y) else None,
        "base_rate": round(float(y.mean()), 5) if len(y) else None,
    }


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict]:
    """Predicted vs observed rate per score decile (equal-count bins)."""
    order = np.argsort(p, kind="stable")
    table = []
    for part in np.array_split(order, bins):
        if len(part):
            table.append(
                {"n": len(part), "predicted": float(p[part].mean()), "observed": float(y[part].mean())}
            )
    return table


def top_reasons(contribs: np.ndarray, values: np.ndarray, names: list[str], k: int = 3) -> list[list[dict]]:
    """The k features pushing each row's risk up the most: [{"feature", "value", "contribution"}]."""
    per_feature = contribs[:, : len(names)]
    k = min(k, len(names))
    if k == 0:
        return [[] for _ in range(len(per_feature))]
    top = np.argpartition(-per_feature, k - 1, axis=1)[:, :k]
    top_vals = np.take_along_axis(per_feature, top, axis=1)
    order = np.argsort(-top_vals, axis=1)
    top = np.take_along_axis(top, order, axis=1)
    top_vals = np.take_along_axis(top_vals, order, axis=1)
    feat_vals = np.take_along_axis(values, top, axis=1)
    out = []
    for idx_row, c_row, v_row in zip(top.tolist(), top_vals.tolist(), feat_vals.tolist(), strict=True):
        out.append(
            [
                {
                    "feature": names[i],
                    "value": None if v != v else round(v, 4),
                    "contribution": round(c, 4),
                }
                for i, c, v in zip(idx_row, c_row, v_row, strict=True)
                if c > 0
            ]
        )
    return out
