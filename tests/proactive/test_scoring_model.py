"""The plain ML functions: calibration, reasons, promotion rule (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from proactive.scoring import model as ml
from proactive.scoring.registry import compare
from proactive.scoring.training import choose_cutoffs


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    p = 1 / (1 + np.exp(-(-2.0 + 1.5 * x[:, 0] - 1.0 * x[:, 1])))
    return x, (rng.random(n) < p).astype(float)


@pytest.mark.parametrize("n_calibration", [600, 20_000])  # Platt below the beta threshold, beta above
def test_calibrated_probabilities_match_observed_rates_on_held_out_rows(n_calibration):
    x_tr, y_tr = _synthetic(20_000, 1)
    x_cal, y_cal = _synthetic(n_calibration, 2)
    x_ev, y_ev = _synthetic(20_000, 3)
    fitted = ml.fit(x_tr, y_tr, x_cal, y_cal, ["a", "b", "c", "d"])
    # Skew the raw margins (an over-confident model): calibration must undo it.
    skew = 1.5
    raw_ev = 1 / (1 + np.exp(-(ml.margins(fitted.booster, x_ev) + skew)))
    calibration = ml.calibration_fit(ml.margins(fitted.booster, x_cal) + skew, y_cal)
    p = ml.calibration_apply(calibration, ml.margins(fitted.booster, x_ev) + skew)
    table = ml.calibration_table(y_ev, p)
    noise = 3 * np.sqrt(0.2 * 0.8 / n_calibration)  # the calibration sample's own error
    assert calibration["method"] == ("platt" if n_calibration < 1000 else "beta")
    assert abs(raw_ev.mean() - y_ev.mean()) > 0.1
    assert abs(p.mean() - y_ev.mean()) < noise + 0.005
    assert max(abs(row["predicted"] - row["observed"]) for row in table) < 2 * noise + 0.03
    scores = ml.evaluate(y_ev, p)
    assert scores["auc"] > 0.75
    assert set(fitted.importance) <= {"a", "b", "c", "d"}
    assert next(iter(fitted.importance)) == "a"


def test_reasons_are_the_features_pushing_risk_up_most():
    contribs = np.array([[0.5, -1.0, 0.2, 0.9, -0.3], [-0.1, -0.2, -0.3, -0.4, 2.0]])
    values = np.array([[3.0, np.nan, 1.0, 7.0], [0, 0, 0, 0]])
    reasons = ml.top_reasons(contribs, values, ["w", "x", "y", "z"], k=3)
    assert reasons[0] == [
        {"feature": "z", "value": 7.0, "contribution": 0.9},
        {"feature": "w", "value": 3.0, "contribution": 0.5},
        {"feature": "y", "value": 1.0, "contribution": 0.2},
    ]
    assert reasons[1] == []  # the bias column (last) is never a reason; nothing pushes risk up


@pytest.mark.parametrize(
    ("new", "old", "promoted"),
    [
        ({"auc": 0.80, "brier": 0.100}, {"auc": 0.80, "brier": 0.100}, True),
        ({"auc": 0.797, "brier": 0.101}, {"auc": 0.80, "brier": 0.100}, True),
        ({"auc": 0.78, "brier": 0.100}, {"auc": 0.80, "brier": 0.100}, False),
        ({"auc": 0.85, "brier": 0.110}, {"auc": 0.80, "brier": 0.100}, False),
        ({"auc": None, "brier": 0.1}, {"auc": 0.80, "brier": 0.100}, False),
        ({"auc": 0.7, "brier": 0.1}, {"auc": None, "brier": None}, True),
    ],
)
def test_a_model_is_promoted_only_when_not_worse(new, old, promoted):
    ok, why = compare(new, old)
    assert ok is promoted
    assert why


def test_the_promotion_tolerance_widens_to_the_noise_of_the_rows():
    new, old = {"auc": 0.78, "brier": 0.100}, {"auc": 0.80, "brier": 0.100}
    assert compare(new, old, worse={"auc_se": 0.015, "brier_se": 0.0})[0] is True  # 2 SE = 0.03
    assert compare(new, old, worse={"auc_se": 0.002, "brier_se": 0.0})[0] is False
    assert compare({"auc": 0.8, "brier": 0.11}, old, worse={"auc_se": 0.0, "brier_se": 0.004})[0] is False


def test_paired_differences_see_a_worse_model_and_beta_calibration_keeps_every_distinction():
    rng = np.random.default_rng(5)
    signal = rng.normal(size=20_000)
    y = (rng.random(20_000) < 1 / (1 + np.exp(-(signal - 1.5)))).astype(float)
    good = 1 / (1 + np.exp(-(signal - 1.5)))
    noisy = 1 / (1 + np.exp(-(signal + rng.normal(scale=1.5, size=20_000) - 1.5)))
    worse = ml.paired_difference(y, noisy, good)
    assert worse["auc_diff"] > 4 * worse["auc_se"] > 0
    assert ml.paired_difference(y, good, good)["auc_diff"] == 0
    margin = np.round(signal * 3, 1)  # a model with 100+ distinct margins
    calibration = ml.calibration_fit(margin, y)
    p = ml.calibration_apply(calibration, margin)
    assert calibration["method"] == "beta"
    assert len(np.unique(p)) == len(np.unique(margin))  # strictly increasing: no ties added
    assert np.all(np.diff(p[np.argsort(margin, kind="stable")]) >= 0)
    assert ml.calibration_error(y, p) < 0.01


@pytest.mark.parametrize("horizon", [3, 10, 14, 84])
def test_the_refit_uses_every_closed_cutoff_and_the_selection_ones_are_purged(horizon):
    as_of = datetime(2025, 6, 1, tzinfo=UTC)
    train, validation, closed = choose_cutoffs(as_of=as_of, horizon_days=horizon, earliest=None)
    h = timedelta(days=horizon)
    assert closed[-1] == as_of - h and max(closed) + h <= as_of  # every label window has closed
    assert set(train) | set(validation) <= set(closed)
    assert max(train) + h <= min(validation)  # purged: no training label after a validation cut-off
    assert len(closed) > len(train) + len(validation) or horizon <= 7


@pytest.mark.parametrize("method", ["platt", "beta"])
def test_recentring_moves_the_mean_to_the_observed_rate_and_keeps_the_order(method):
    """A calibration fitted on one model's margins and applied to a refit whose margins run higher
    (here: shifted by 1.0) predicts too much; recentring on the refit's rows fixes the mean only."""
    x_tr, y_tr = _synthetic(20_000, 1)
    x_cal, y_cal = _synthetic(600 if method == "platt" else 20_000, 2)
    fitted = ml.fit(x_tr, y_tr, x_cal, y_cal, ["a", "b", "c", "d"])
    calibration = ml.calibration_fit(ml.margins(fitted.booster, x_cal) - 1.0, y_cal)
    assert calibration["method"] == method
    before = ml.predict(fitted.booster, calibration, ["a", "b", "c", "d"], x_tr)
    assert before.mean() - y_tr.mean() > 0.03
    moved = ml.recentre(fitted.booster, calibration, ["a", "b", "c", "d"], x_tr, y_tr)
    after = ml.predict(fitted.booster, moved, ["a", "b", "c", "d"], x_tr)
    assert abs(after.mean() - y_tr.mean()) < 1e-6
    assert moved["recentred"] < 0
    np.testing.assert_array_equal(np.argsort(before, kind="stable"), np.argsort(after, kind="stable"))
    # Nothing to centre on: unchanged.
    assert (
        ml.recentre(fitted.booster, calibration, ["a", "b", "c", "d"], x_tr, np.zeros(len(y_tr)))
        == calibration
    )
