"""Score every customer of a tenant in chunks: features -> predict -> calibrate -> reasons -> upsert.

With an active model, reasons come from XGBoost's approximate contributions (Saabas),
which cost about one prediction; exact TreeSHAP is kept for single-customer views
(`selectors.customer_risk`). Without a model (cold start) the transparent rule-based
health score below is stored instead, flagged `rule_based`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import xgboost as xgb
from django.db import connection

from accounts.models import Tenant
from proactive.chunks import CHUNK_SIZE, customer_id_ranges
from proactive.features.values import values_ensure
from proactive.models import RiskModel, RiskScore, RiskScoreDaily
from proactive.scoring import model as ml
from proactive.scoring.registry import active_model, is_usable, load_booster
from proactive.scoring.training import range_features

TOP_REASONS = 3


@dataclass(frozen=True)
class Rule:
    metric: str
    weight: float
    cap: float
    missing: float = 0.0

    def term(self, values: np.ndarray) -> np.ndarray:
        return self.weight * np.minimum(np.nan_to_num(values, nan=self.missing), self.cap)


RULE_INTERCEPT = -3.0


def health_rules(tenant: Tenant) -> list[Rule]:
    """The rule-based health score used until a model is trained: a logistic score of a few
    readable counts. Weights are in log-odds; the reasons show each rule's term."""
    if tenant.prediction_target == Tenant.Target.INACTIVITY:
        activity = tenant.activity_signals[0] if tenant.activity_signals else "*"
        return [
            Rule(f"days_since_last({activity})", 0.12, 30, missing=30),
            Rule("count(error.*, 7)", 0.1, 10),
        ]
    rules = [Rule(f"count({p}, 30)", 0.9, 4) for p in tenant.contact_signals]
    return [*rules, Rule("count(error.*, 7)", 0.25, 10), Rule("count(error.*, 1)", 0.4, 5)]


def rule_scores(tenant: Tenant, frame_values: np.ndarray) -> tuple[np.ndarray, list[list[dict]]]:
    rules = health_rules(tenant)
    terms = np.column_stack([r.term(frame_values[:, i]) for i, r in enumerate(rules)])
    score = 1.0 / (1.0 + np.exp(-(RULE_INTERCEPT + terms.sum(axis=1))))
    reasons = ml.top_reasons(terms, frame_values, [r.metric for r in rules], k=TOP_REASONS)
    return score, reasons


@dataclass
class Scorer:
    """What a scoring run needs, resolved once per run (and rebuilt by each chunk task)."""

    tenant: Tenant
    model: RiskModel | None
    names: list[str]
    booster: xgb.Booster | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def for_tenant(cls, tenant: Tenant, model: RiskModel | None = None) -> Scorer:
        model = model or active_model(tenant)
        values_ensure(tenant)  # after a changed declaration of numeric properties: rebuilt once
        if model is not None and is_usable(model, tenant):
            return cls(tenant, model, list(model.feature_names), load_booster(model))
        return cls(tenant, None, [r.metric for r in health_rules(tenant)])

    def _tick(self, step: str, started: float) -> float:
        now = time.perf_counter()
        self.timings[step] = round(self.timings.get(step, 0.0) + now - started, 4)
        return now

    def score(self, lo: int, hi: int, as_of: datetime) -> tuple[np.ndarray, np.ndarray, list]:
        """(customer_ids, scores, reasons) for the customers with lo <= id <= hi as of `as_of`."""
        t = time.perf_counter()
        fitted = self.model.calibration if self.model else None
        ids, x = range_features(
            tenant=self.tenant, as_of=as_of, names=self.names, lo=lo, hi=hi, fitted=fitted
        )
        t = self._tick("features", t)
        if self.booster is None:
            scores, reasons = rule_scores(self.tenant, x)
            self._tick("predict", t)
            return ids, scores, reasons
        calibration = self.model.calibration if self.model else {}
        scores = ml.predict(self.booster, calibration, self.names, x)
        t = self._tick("predict", t)
        contribs = self.booster.predict(
            xgb.DMatrix(x, missing=np.nan, nthread=2), pred_contribs=True, approx_contribs=True
        )
        reasons = ml.top_reasons(contribs, x, self.names, k=TOP_REASONS)
        self._tick("reasons", t)
        return ids, scores, reasons

    def write(self, customer_ids: np.ndarray, scores: np.ndarray, reasons: list, as_of: datetime) -> int:
        """Upsert the latest score and the day's score; an older as-of never overwrites a newer one."""
        t = time.perf_counter()
        day = as_of.astimezone(self.tenant.tz).date()
        model_id = self.model.pk if self.model else None
        version = self.model.version if self.model else None
        ids = customer_ids.tolist()
        values = np.round(scores, 6).tolist()
        reasons_json = [json.dumps(r) for r in reasons]
        rs, rsd = RiskScore._meta.db_table, RiskScoreDaily._meta.db_table
        with connection.cursor() as cur:
            cur.execute(
                f"""
                INSERT INTO {rs} (tenant_id, customer_id, model_id, score, scored_at, reasons, rule_based)
                SELECT %s, u.cid, %s, u.score, %s, u.reasons::jsonb, %s
                FROM unnest(%s::bigint[], %s::float8[], %s::text[]) AS u(cid, score, reasons)
                ON CONFLICT (tenant_id, customer_id) DO UPDATE SET
                    model_id = EXCLUDED.model_id, score = EXCLUDED.score, scored_at = EXCLUDED.scored_at,
                    reasons = EXCLUDED.reasons, rule_based = EXCLUDED.rule_based
                WHERE {rs}.scored_at <= EXCLUDED.scored_at
                """,  # noqa: S608
                [self.tenant.pk, model_id, as_of, self.model is None, ids, values, reasons_json],
            )
            cur.execute(
                f"""
                INSERT INTO {rsd} (tenant_id, customer_id, day, score, model_version)
                SELECT %s, u.cid, %s, u.score, %s FROM unnest(%s::bigint[], %s::float8[]) AS u(cid, score)
                ON CONFLICT (tenant_id, customer_id, day) DO UPDATE SET
                    score = EXCLUDED.score, model_version = EXCLUDED.model_version
                """,  # noqa: S608
                [self.tenant.pk, day, version, ids, values],
            )
        self._tick("write", t)
        return len(ids)


def score_range(scorer: Scorer, lo: int, hi: int, as_of: datetime) -> int:
    ids, scores, reasons = scorer.score(lo, hi, as_of)
    return scorer.write(ids, scores, reasons, as_of)


def score_all(*, tenant: Tenant, as_of: datetime, chunk_size: int = CHUNK_SIZE, on_chunk=None) -> dict:
    """Score every customer in-process, chunk by chunk; returns counts and timings."""
    scorer = Scorer.for_tenant(tenant)
    written = 0
    chunks = customer_id_ranges(tenant, chunk_size)
    distinct: set[float] = set()
    for i, (lo, hi) in enumerate(chunks):
        ids, scores, reasons = scorer.score(lo, hi, as_of)
        written += scorer.write(ids, scores, reasons, as_of)
        distinct.update(np.round(scores, 6).tolist())
        if on_chunk is not None:
            on_chunk(i + 1, len(chunks), written)
    return {
        "scored": written,
        "distinct_scores": len(distinct),
        "chunks": len(chunks),
        "model_version": scorer.model.version if scorer.model else None,
        "rule_based": scorer.model is None,
        "timings": scorer.timings,
    }
