"""Simple models every training run must beat, fitted on the same rows as the project's model.

- `bgnbd`: the BG/NBD recency-frequency model (Fader, Hardie & Lee 2005) on the prediction
  target's signals, as repeat "transactions" per active day: the probability of at least one
  target signal (contact) or of none (inactivity) within the horizon, from each customer's
  (frequency, recency, age) as of the cut-off. Maximum likelihood with scipy.
- `xgb_counts`: a plain XGBoost on the raw windowed counts alone (no recency, trend, tenure or
  history features), early-stopped like the project's model.

Both follow the project's regime: chosen and calibrated on the purged validation split, refitted
on every closed cut-off before they are compared on later rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import gammaln

from proactive.features.attributes import parse_attribute
from proactive.features.history import parse_history
from proactive.features.metrics import Kind, parse_metric
from proactive.features.values import parse_value
from proactive.scoring import model as ml

MAX_FIT_ROWS = 50_000  # four parameters: more rows add time, not precision


def bgnbd_name(stream: str, horizon: int) -> str:
    """The model feature holding BG/NBD's probability of a target signal within the horizon."""
    return f"bgnbd({stream}, {horizon})"


def bgnbd_inputs(names: list[str], x: np.ndarray, stream: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(repeat active days, days from first to last active day, days since first) per row.
    Customers without any target activity have none, over their age as a customer (days since
    sign-up or since their first signal of any kind, whichever is longer)."""
    col = {n: i for i, n in enumerate(names)}

    def column(name: str) -> np.ndarray:
        return x[:, col[name]].astype(np.float64)

    days = np.nan_to_num(column(f"active_days({stream})"), nan=0.0)
    since_first = column(f"days_since_first({stream})")
    since_active = column(f"days_since_active({stream})")
    age = np.fmax(column("days_since_signup"), column("days_since_first(*)"))
    none = np.isnan(since_first) | (days == 0)
    freq = np.where(none, 0.0, days - 1)
    big_t = np.where(none, np.nan_to_num(age, nan=0.0), since_first)
    t_x = np.where(none, 0.0, since_first - since_active)
    big_t = np.maximum(big_t, 0.0) + 1.0  # day granularity: age 0 is the day itself
    t_x = np.clip(t_x, 0.0, big_t)
    return freq, t_x, big_t


def _neg_ll(log_params: np.ndarray, freq: np.ndarray, t_x: np.ndarray, big_t: np.ndarray) -> float:
    r, alpha, a, b = np.exp(log_params)
    a1 = gammaln(r + freq) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + freq) - gammaln(b) - gammaln(a + b + freq)
    a3 = -(r + freq) * np.log(alpha + big_t)
    repeat = freq > 0
    a4 = np.full(len(freq), -np.inf)
    a4[repeat] = np.log(a) - np.log(b + freq[repeat] - 1) - (r + freq[repeat]) * np.log(alpha + t_x[repeat])
    ll = a1 + a2 + np.logaddexp(a3, a4)
    return -float(ll.mean())


@dataclass
class BGNBD:
    """Fitted (r, alpha, a, b); time in days."""

    r: float
    alpha: float
    a: float
    b: float

    @classmethod
    def fit(cls, freq: np.ndarray, t_x: np.ndarray, big_t: np.ndarray, seed: int = 7) -> BGNBD:
        if len(freq) > MAX_FIT_ROWS:
            keep = np.random.default_rng(seed).choice(len(freq), MAX_FIT_ROWS, replace=False)
            freq, t_x, big_t = freq[keep], t_x[keep], big_t[keep]
        start = np.log([1.0, max(float(big_t.mean()) / 4, 1.0), 1.0, 1.0])
        result = minimize(_neg_ll, start, args=(freq, t_x, big_t), method="L-BFGS-B", bounds=[(-8, 8)] * 4)
        r, alpha, a, b = np.exp(result.x)
        return cls(float(r), float(alpha), float(a), float(b))

    def as_dict(self) -> dict:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}

    def p_none(self, freq: np.ndarray, t_x: np.ndarray, big_t: np.ndarray, horizon: float) -> np.ndarray:
        """P(no transaction in (T, T + horizon]): dead, or alive and silent."""
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        log_odds_dead = np.full(len(freq), -np.inf)
        repeat = freq > 0
        log_odds_dead[repeat] = (
            np.log(a)
            - np.log(b + freq[repeat] - 1)
            + (r + freq[repeat]) * (np.log(alpha + big_t[repeat]) - np.log(alpha + t_x[repeat]))
        )
        p_alive = 1.0 / (1.0 + np.exp(np.minimum(log_odds_dead, 700)))
        silent = np.exp((r + freq) * (np.log(alpha + big_t) - np.log(alpha + big_t + horizon)))
        return (1.0 - p_alive) + p_alive * silent


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(p) - np.log1p(-p)


@dataclass
class BGNBDBaseline:
    stream: str
    horizon: int
    inactivity: bool
    model: BGNBD | None = None
    calibration: dict | None = None

    name = "bgnbd"

    def p_any(self, names: list[str], x: np.ndarray) -> np.ndarray:
        """P(at least one target signal within the horizon) per row."""
        if self.model is None:
            raise RuntimeError("fit first")
        freq, t_x, big_t = bgnbd_inputs(names, x, self.stream)
        return 1.0 - self.model.p_none(freq, t_x, big_t, float(self.horizon))

    def raw(self, names: list[str], x: np.ndarray, age: np.ndarray) -> np.ndarray:
        p_any = self.p_any(names, x)
        return _logit(1.0 - p_any if self.inactivity else p_any)

    def select(self, train: tuple, stop: tuple) -> None:
        """Fit on the training rows; calibrate on the stopping rows."""
        names, x, _y, _age = train
        self.model = BGNBD.fit(*bgnbd_inputs(names, x, self.stream))
        s_names, s_x, s_y, s_age = stop
        self.calibration = ml.calibration_fit(self.raw(s_names, s_x, s_age), s_y)

    def refit(self, rows: tuple) -> None:
        names, x, _y, _age = rows
        self.model = BGNBD.fit(*bgnbd_inputs(names, x, self.stream))

    def predict(self, names: list[str], x: np.ndarray, age: np.ndarray) -> np.ndarray:
        return ml.calibration_apply(self.calibration or {}, self.raw(names, x, age))


def fill_bgnbd(names: list[str], x: np.ndarray, params: dict | None) -> None:
    """Fill a model's BG/NBD feature column in place from its stored parameters (NaN without)."""
    for j, name in enumerate(names):
        if not name.startswith("bgnbd("):
            continue
        if not params:
            x[:, j] = np.nan
            continue
        stream, horizon = name[len("bgnbd(") : -1].rsplit(", ", 1)
        model = BGNBD(params["r"], params["alpha"], params["a"], params["b"])
        freq, t_x, big_t = bgnbd_inputs(names, x, stream)
        x[:, j] = 1.0 - model.p_none(freq, t_x, big_t, float(horizon))


def count_columns(names: list[str]) -> list[int]:
    """The raw windowed counts among a model's features."""
    out = []
    for i, n in enumerate(names):
        if n.startswith("bgnbd(") or any(
            f(n) is not None for f in (parse_history, parse_attribute, parse_value)
        ):
            continue
        if parse_metric(n).kind is Kind.COUNT:
            out.append(i)
    return out


@dataclass
class CountsBaseline:
    fitted: ml.Fitted | None = None
    calibration: dict | None = None
    rounds: int = 0

    name = "xgb_counts"

    def select(self, train: tuple, stop: tuple) -> None:
        names, x, y, _ = train
        cols = count_columns(names)
        sub = [names[i] for i in cols]
        s_names, s_x, s_y, _ = stop
        self.fitted = ml.boost(x[:, cols], y, s_x[:, count_columns(s_names)], s_y, sub)
        self.rounds = self.fitted.best_iteration + 1
        self.calibration = ml.calibration_fit(
            ml.margins(self.fitted.booster, s_x[:, count_columns(s_names)]), s_y
        )

    def refit(self, rows: tuple) -> None:
        names, x, y, _ = rows
        cols = count_columns(names)
        self.fitted = ml.refit(x[:, cols], y, self.rounds, [names[i] for i in cols])

    def predict(self, names: list[str], x: np.ndarray, age: np.ndarray) -> np.ndarray:
        if self.fitted is None:
            raise RuntimeError("fit first")
        margin = ml.margins(self.fitted.booster, x[:, count_columns(names)])
        return ml.calibration_apply(self.calibration or {}, margin)


def baselines_for(*, names: list[str], stream: str, horizon: int, inactivity: bool) -> list:
    """The baselines that apply to a feature set (BG/NBD needs the target's history columns)."""
    out: list = []
    if {f"active_days({stream})", "days_since_signup", "days_since_first(*)"} <= set(names):
        out.append(BGNBDBaseline(stream=stream, horizon=horizon, inactivity=inactivity))
    if count_columns(names):
        out.append(CountsBaseline())
    return out
