"""XGBoost training, calibration and evaluation as plain functions: arrays in, numbers out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import numpy as np
import xgboost as xgb
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

PARAMS: dict = {
    "objective": "binary:logistic",
    "tree_method": "hist",
    "max_depth": 5,
    "eta": 0.1,
    "subsample": 0.8,
    "colsample_bytree": 0.6,
    "min_child_weight": 5,
    "max_bin": 128,
    "eval_metric": "logloss",
    "nthread": 2,
    "seed": 7,
}
MAX_ROUNDS = 300
EARLY_STOPPING = 20
# Beta calibration has three parameters; below this many positives (or negatives), Platt's two.
BETA_MIN_POSITIVES = 200


@dataclass
class Fitted:
    booster: xgb.Booster
    best_iteration: int
    importance: dict[str, float] = field(default_factory=dict)


def _importance(booster: xgb.Booster, names: list[str]) -> dict[str, float]:
    # One output (binary:logistic): one gain per feature; lists come only from multi-output models.
    gain = cast(dict[str, float], booster.get_score(importance_type="total_gain"))
    total = sum(gain.values()) or 1.0
    importance = {names[int(k[1:])]: round(v / total, 6) for k, v in gain.items()}
    return dict(sorted(importance.items(), key=lambda kv: -kv[1]))


def boost(
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
    return Fitted(booster=booster, best_iteration=best, importance=_importance(booster, names))


def fit(
    x_train: np.ndarray, y_train: np.ndarray, x_stop: np.ndarray, y_stop: np.ndarray, names: list[str]
) -> Fitted:
    """The project model's selection fit: trees chosen by early stopping on validation rows."""
    return boost(x_train, y_train, x_stop, y_stop, names)


def refit(x: np.ndarray, y: np.ndarray, rounds: int, names: list[str]) -> Fitted:
    """The same model with a fixed number of trees (chosen on validation) on every closed cut-off."""
    booster = xgb.train(
        PARAMS, xgb.DMatrix(x, label=y, missing=np.nan, nthread=2), num_boost_round=max(1, rounds)
    )
    return Fitted(booster=booster, best_iteration=rounds - 1, importance=_importance(booster, names))


def margins(booster: xgb.Booster, x: np.ndarray) -> np.ndarray:
    return booster.inplace_predict(x, predict_type="margin", missing=np.nan).astype(np.float64)


def _beta_terms(margin: np.ndarray) -> np.ndarray:
    """(ln p, -ln(1 - p)) of p = sigmoid(margin), computed without overflow."""
    return np.column_stack([-np.logaddexp(0.0, -margin), np.logaddexp(0.0, margin)])


def calibration_fit(margin: np.ndarray, y: np.ndarray) -> dict:
    """Map raw margins to probabilities, fitted on rows the booster never trained on.

    Strictly increasing maps only (beta calibration, Kull et al. 2017, or Platt), so the
    calibrated scores keep every distinction the model makes: isotonic steps had tied
    thousands of customers on one value (and an order that ties cannot give)."""
    if y.sum() >= BETA_MIN_POSITIVES and (len(y) - y.sum()) >= BETA_MIN_POSITIVES:
        lr = LogisticRegression(C=1e4).fit(_beta_terms(margin), y)
        a, b = (float(v) for v in lr.coef_[0])
        if a >= 0 and b >= 0 and a + b > 0:
            return {"method": "beta", "a": a, "b": b, "c": float(lr.intercept_[0])}
    lr = LogisticRegression(C=1e4).fit(margin.reshape(-1, 1), y)
    return {"method": "platt", "a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}


def _logit(q: np.ndarray) -> np.ndarray:
    q = np.clip(np.nan_to_num(np.asarray(q, dtype=np.float64), nan=0.5), 1e-6, 1 - 1e-6)
    return np.log(q) - np.log1p(-q)


def stack_fit(margin: np.ndarray, prior: np.ndarray, y: np.ndarray, feature: str) -> dict | None:
    """Calibrate the margin together with a baseline's probability (`prior`, e.g. BG/NBD's):
    p = sigmoid(a * margin + b * logit(prior) + c), fitted on rows neither model trained on.
    On little data the boosted model is noisy where the recency-frequency view is not; the
    blend keeps both. None unless both weights are positive (then the order stays readable:
    riskier by the model or by the baseline means a higher score)."""
    lr = LogisticRegression(C=1e4).fit(np.column_stack([margin, _logit(prior)]), y)
    a, b = (float(v) for v in lr.coef_[0])
    if a <= 0 or b <= 0:
        return None
    return {"method": "stack", "a": a, "b": b, "c": float(lr.intercept_[0]), "feature": feature}


def predict(booster: xgb.Booster, calibration: dict, names: list[str], x: np.ndarray) -> np.ndarray:
    """Calibrated probabilities of a stored model for feature rows `x` (columns in `names` order)."""
    margin = margins(booster, x)
    if calibration.get("method") == "stack":
        prior = _logit(x[:, names.index(calibration["feature"])])
        z = calibration["a"] * margin + calibration["b"] * prior + calibration["c"]
        return 1.0 / (1.0 + np.exp(-z))
    return calibration_apply(calibration, margin)


def recentre(booster: xgb.Booster, calibration: dict, names: list[str], x: np.ndarray, y: np.ndarray) -> dict:
    """The calibration with its intercept moved so that the mean prediction on `x` is the observed
    rate of `y` (calibration in the large). The map is fitted on the selection fit's margins and
    applied to the refit, whose margins run a little differently: on every closed cut-off its
    mean prediction fell 0.3-0.7 points below the observed rate on the demo and the lifetimes log.
    Only the intercept moves, so the order of the scores is untouched."""
    key = {"stack": "c", "beta": "c", "platt": "b"}.get(calibration.get("method", ""))
    if key is None or not len(y) or not 0 < y.mean() < 1:
        return calibration
    z = _logit(predict(booster, calibration, names, x))
    rate, shift = float(y.mean()), 0.0
    for _ in range(30):  # Newton steps on mean(sigmoid(z + shift)) = rate (monotone in shift)
        p = 1.0 / (1.0 + np.exp(-(z + shift)))
        step = (p.mean() - rate) / max(float((p * (1 - p)).mean()), 1e-9)
        shift -= step
        if abs(step) < 1e-7:
            break
    return {**calibration, key: calibration[key] + shift, "recentred": round(shift, 6)}


def calibration_apply(calibration: dict, margin: np.ndarray) -> np.ndarray:
    method = calibration.get("method")
    if method == "beta":
        z = _beta_terms(margin) @ np.array([calibration["a"], calibration["b"]]) + calibration["c"]
        return 1.0 / (1.0 + np.exp(-z))
    if method == "isotonic":  # models stored before beta calibration
        return np.interp(margin, np.asarray(calibration["x"]), np.asarray(calibration["y"]))
    if method == "platt":
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


def fast_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC by the rank-sum formula (ties count half), without sklearn's per-call checks."""
    ranks = rankdata(p)
    n1 = float(y.sum())
    n0 = len(y) - n1
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def paired_difference(y: np.ndarray, p_new: np.ndarray, p_old: np.ndarray, *, seed: int = 7) -> dict:
    """How much worse the new predictions are than the old on the same rows, with standard errors:
    AUC (old - new, 200 paired bootstrap resamples) and Brier (new - old, analytic). Positive =
    the new model is worse."""
    if not 0 < y.sum() < len(y):
        return {}
    d = (p_new - y) ** 2 - (p_old - y) ** 2
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(200):
        i = rng.integers(0, len(y), len(y))
        if 0 < y[i].sum() < len(i):
            diffs.append(fast_auc(y[i], p_old[i]) - fast_auc(y[i], p_new[i]))
    return {
        "auc_diff": round(float(fast_auc(y, p_old) - fast_auc(y, p_new)), 5),
        "auc_se": round(float(np.std(diffs)), 5),
        "brier_diff": round(float(d.mean()), 6),
        "brier_se": round(float(d.std() / np.sqrt(len(d))), 6),
    }


def calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float | None:
    """Expected calibration error over equal-count bins: the row-weighted mean |predicted -
    observed| of the reliability table."""
    if not len(y):
        return None
    table = calibration_table(y, p, bins)
    return round(sum(r["n"] * abs(r["predicted"] - r["observed"]) for r in table) / len(y), 5)


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
