"""Reads behind the tenant pages: overview, model, customers, pipeline runs and fatigue.

Every function takes the tenant explicitly and aggregates in SQL (one query per figure),
so a page costs the same number of queries with ten customers or 100,000.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, F, Min, OuterRef, Q, Subquery
from django.db.models.functions import TruncWeek
from django.http import Http404
from django.utils import timezone

from accounts.models import Tenant
from campaigns.models import Outreach
from proactive.features.metrics import MetricError, parse_metric
from proactive.models import (
    Customer,
    PipelineRun,
    RiskModel,
    RiskScore,
    RiskScoreDaily,
    Signal,
    SignalName,
)
from proactive.rollups import DAILY_SOURCE, NAMES_SOURCE
from proactive.signal_patterns import matches_any

T = TypeVar("T")
ENGAGEMENT_DAYS = 28
TREND_WEEKS = 12
SCORE_BINS = 20
CUSTOMER_HISTORY_DAYS = 90
CUSTOMER_PAGE_SIZE = 50
FATIGUE_WEEKS = 8


PAGE_CACHE_SECONDS = 300


def page_cached(*, tenant: Tenant, name: str, parts: tuple, compute: Callable[[], T]) -> T:
    """Aggregates that scan a tenant's outreach or scores, kept for a few minutes: at 100,000
    customers they cost 0.2-1.5 s, and a dashboard that is 5 minutes old answers the same
    question. Keys carry the database name, so test databases sharing a Redis never mix."""
    key = f"pages:{connection.settings_dict['NAME']}:{tenant.pk}:{name}:" + ":".join(str(p) for p in parts)
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, PAGE_CACHE_SECONDS)
    return value


def _fetch(sql: str, params: list[Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _rate(part: float, whole: float) -> float | None:
    return part / whole if whole else None


# --- overview -----------------------------------------------------------------------------------


@dataclass
class Engagement:
    """Sent messages in the last `days` and what their recipients did with them."""

    days: int
    customers: int
    sent: int
    reached: int
    seen: int
    clicked: int
    dismissed: int
    helpful: int
    not_helpful: int

    @property
    def per_customer_per_week(self) -> float | None:
        return _rate(self.sent, self.customers * self.days / 7)

    @property
    def per_reached_per_week(self) -> float | None:
        return _rate(self.sent, self.reached * self.days / 7)

    @property
    def dismiss_rate(self) -> float | None:
        return _rate(self.dismissed, self.sent)

    @property
    def not_helpful_rate(self) -> float | None:
        """Share of the feedback given that said "not helpful"."""
        return _rate(self.not_helpful, self.helpful + self.not_helpful)


def engagement_get(*, tenant: Tenant, now: datetime, days: int = ENGAGEMENT_DAYS) -> Engagement:
    customers = Customer.objects.for_tenant(tenant).count()
    agg = (
        Outreach.objects.for_tenant(tenant)
        .filter(sent_at__gt=now - timedelta(days=days), sent_at__lte=now)
        .aggregate(
            sent=Count("id"),
            reached=Count("customer_id", distinct=True),
            seen=Count("id", filter=Q(seen_at__isnull=False)),
            clicked=Count("id", filter=Q(clicked_at__isnull=False)),
            dismissed=Count("id", filter=Q(dismissed_at__isnull=False)),
            helpful=Count("id", filter=Q(feedback=Outreach.Feedback.HELPFUL)),
            not_helpful=Count("id", filter=Q(feedback=Outreach.Feedback.NOT_HELPFUL)),
        )
    )
    return Engagement(days=days, customers=customers, **agg)


@dataclass
class QueueState:
    size: int
    oldest: datetime | None

    @property
    def oldest_age(self) -> timedelta | None:
        return timezone.now() - self.oldest if self.oldest else None


def queue_state_get(*, tenant: Tenant) -> QueueState:
    agg = (
        Outreach.objects.for_tenant(tenant)
        .filter(status=Outreach.Status.PENDING_REVIEW)
        .aggregate(size=Count("id"), oldest=Min("created_at"))
    )
    return QueueState(size=agg["size"], oldest=agg["oldest"])


STATUS_ORDER = [
    Outreach.Status.SENT,
    Outreach.Status.PENDING_REVIEW,
    Outreach.Status.HELD_OUT,
    Outreach.Status.SUPPRESSED,
    Outreach.Status.REJECTED,
    Outreach.Status.SNOOZED,
    Outreach.Status.EXPIRED,
]


def outreach_weekly(
    *, tenant: Tenant, now: datetime, weeks: int = TREND_WEEKS, **filters: Any
) -> tuple[list[date], dict[str, list[int]]]:
    """Outreach per week of its trigger time, by status, for the last `weeks` weeks (zeros included)."""
    start = now - timedelta(weeks=weeks)
    rows = (
        Outreach.objects.for_tenant(tenant)
        .filter(triggered_at__gt=start, triggered_at__lte=now, **filters)
        .annotate(week=TruncWeek("triggered_at"))
        .values("week", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    first = timezone.localtime(start).date()
    first -= timedelta(days=first.weekday())
    days = [first + timedelta(weeks=i) for i in range(weeks + 1)]
    by_status: dict[str, list[int]] = {s.value: [0] * len(days) for s in STATUS_ORDER}
    index = {d: i for i, d in enumerate(days)}
    for row in rows:
        week = timezone.localtime(row["week"]).date() if isinstance(row["week"], datetime) else row["week"]
        if week in index:
            by_status[row["status"]][index[week]] += row["n"]
    return days, by_status


def latest_run_get(*, tenant: Tenant) -> PipelineRun | None:
    # Monitoring runs every 5 minutes; the overview shows the latest scoring or training run.
    return (
        PipelineRun.objects.for_tenant(tenant)
        .exclude(kind=PipelineRun.Kind.MONITOR)
        .order_by("-started_at")
        .first()
    )


# --- model --------------------------------------------------------------------------------------


def model_list(*, tenant: Tenant) -> list[RiskModel]:
    """Every model version, oldest first, without the booster bytes."""
    return list(RiskModel.objects.for_tenant(tenant).defer("booster").order_by("version"))


@dataclass
class ScoreDistribution:
    upper: float
    counts: list[int]
    total: int
    mean: float | None
    scored_at: datetime | None
    rule_based: int

    @property
    def edges(self) -> list[float]:
        step = self.upper / len(self.counts) if self.counts else 0
        return [round(i * step, 4) for i in range(len(self.counts) + 1)]


def score_distribution_get(*, tenant: Tenant, bins: int = SCORE_BINS) -> ScoreDistribution:
    """Histogram of current scores on [0, upper], upper = the max rounded up to a multiple of 0.05."""
    table = RiskScore._meta.db_table
    rows = _fetch(
        f"""
        WITH s AS (SELECT score, scored_at, rule_based FROM {table} WHERE tenant_id = %s),
        m AS (
            SELECT GREATEST(LEAST(1.0, CEIL(MAX(score) * 20) / 20.0), 0.05) AS hi,
                   AVG(score) AS mean, MAX(scored_at) AS latest,
                   COUNT(*) FILTER (WHERE rule_based) AS rule_based
            FROM s
        )
        SELECT LEAST(GREATEST(width_bucket(s.score, 0, m.hi, %s), 1), %s) AS b, COUNT(*),
               m.hi, m.mean, m.latest, m.rule_based
        FROM s CROSS JOIN m GROUP BY b, m.hi, m.mean, m.latest, m.rule_based ORDER BY b
        """,  # noqa: S608 (table name from the model)
        [tenant.pk, bins, bins],
    )
    if not rows:
        return ScoreDistribution(upper=1.0, counts=[], total=0, mean=None, scored_at=None, rule_based=0)
    counts = [0] * bins
    for b, n, *_ in rows:
        counts[b - 1] = n
    _, _, upper, mean, latest, rule_based = rows[0]
    return ScoreDistribution(
        upper=float(upper),
        counts=counts,
        total=sum(counts),
        mean=mean,
        scored_at=latest,
        rule_based=rule_based,
    )


@dataclass
class Drift:
    """How the world moved since the active model was trained.

    Scores: mean predicted risk on the model's validation rows (from its calibration table)
    vs the mean of today's scores. Signals: names the tenant started sending after training
    (unknown to the model) and names the model uses that stopped arriving.
    """

    trained_mean: float | None
    trained_base_rate: float | None
    current_mean: float | None
    new_signals: list[SignalName] = field(default_factory=list)
    silent_signals: list[SignalName] = field(default_factory=list)

    @property
    def mean_shift(self) -> float | None:
        if self.trained_mean is None or self.current_mean is None or self.trained_mean == 0:
            return None
        return self.current_mean / self.trained_mean - 1

    @property
    def drifted(self) -> bool:
        shift = self.mean_shift
        return bool((shift is not None and abs(shift) > 0.25) or self.silent_signals)


SILENT_AFTER = timedelta(days=7)


def _model_signal_names(model: RiskModel) -> set[str]:
    names = set()
    for feature in model.feature_names or []:
        try:
            metric = parse_metric(feature)
        except MetricError:
            continue  # a model feature outside the metric grammar names no signal
        if metric.pattern:
            names.add(metric.pattern)
    return names


def drift_get(*, tenant: Tenant, model: RiskModel, current_mean: float | None, now: datetime) -> Drift:
    table = model.metrics.get("calibration_table") or []
    total = sum(row.get("n", 0) for row in table)
    trained_mean = sum(row["n"] * row["predicted"] for row in table) / total if total else None
    used = _model_signal_names(model)
    catalogue = signal_catalogue(tenant)
    new = [s for s in catalogue if s.first_seen > model.as_of]
    silent = [
        s
        for s in catalogue
        if s.last_seen < now - SILENT_AFTER
        and s.last_seen < model.as_of + SILENT_AFTER
        and matches_any(s.name, used)
    ]
    return Drift(
        trained_mean=trained_mean,
        trained_base_rate=model.metrics.get("base_rate"),
        current_mean=current_mean,
        new_signals=new,
        silent_signals=silent,
    )


# --- customers ----------------------------------------------------------------------------------


def customer_search(
    *, tenant: Tenant, query: str = "", limit: int = CUSTOMER_PAGE_SIZE
) -> list[Mapping[str, Any]]:
    """Customers matching `query` (external id, name or email), riskiest first; the riskiest overall
    when there is no query (served from the (tenant, -score) index, not a sort of every customer)."""
    query = query.strip()
    if not query:
        return list(
            RiskScore.objects.for_tenant(tenant)
            .order_by("-score")
            .values(
                "score",
                "scored_at",
                external_id=F("customer__external_id"),
                name=F("customer__name"),
                email=F("customer__email"),
                signed_up_at=F("customer__signed_up_at"),
            )[:limit]
        )
    score = RiskScore.objects.for_tenant(tenant).filter(customer=OuterRef("pk")).values("score")[:1]
    return list(
        Customer.objects.for_tenant(tenant)
        .filter(Q(external_id__icontains=query) | Q(name__icontains=query) | Q(email__icontains=query))
        .annotate(score=Subquery(score))
        .order_by("-score", "external_id")
        .values("external_id", "name", "email", "signed_up_at", "score")[:limit]
    )


def customer_get(*, tenant: Tenant, external_id: str) -> Customer:
    customer = Customer.objects.for_tenant(tenant).filter(external_id=external_id).first()
    if customer is None:
        raise Http404("No such customer")
    return customer


def customer_risk_history(
    *, tenant: Tenant, customer: Customer, since: date
) -> list[tuple[date, float, int | None]]:
    return list(
        RiskScoreDaily.objects.for_tenant(tenant)
        .filter(customer=customer, day__gte=since)
        .order_by("day")
        .values_list("day", "score", "model_version")
    )


def customer_signal_days(*, tenant: Tenant, customer: Customer, since: date) -> list[tuple[str, date, int]]:
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT d.name, d.day, sum(d.count)::int FROM {DAILY_SOURCE} d "  # noqa: S608
            "WHERE d.tenant_id = %s AND d.customer_id = %s AND d.day >= %s GROUP BY 2, 1 ORDER BY 2, 1",
            [tenant.pk, customer.pk, since],
        )
        return cur.fetchall()


def signal_catalogue(tenant: Tenant) -> list[SignalName]:
    """The tenant's signal names with the rollup deltas not folded in yet (unsaved rows)."""
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT name, total, first_seen, last_seen FROM {NAMES_SOURCE} n ORDER BY name",  # noqa: S608
            {"tenant_id": tenant.pk},
        )
        return [
            SignalName(tenant=tenant, name=name, total=total, first_seen=first, last_seen=last)
            for name, total, first, last in cur.fetchall()
        ]


def customer_signals_recent(*, tenant: Tenant, customer: Customer, limit: int = 40) -> list[Signal]:
    return list(
        Signal.objects.for_tenant(tenant)
        .filter(customer=customer)
        .order_by("-timestamp")
        .only("name", "timestamp", "properties")[:limit]
    )


def customer_outreach(*, tenant: Tenant, customer: Customer, limit: int = 200) -> list[Outreach]:
    return list(
        Outreach.objects.for_tenant(tenant)
        .filter(customer=customer)
        .select_related("playbook", "campaign", "incident", "reviewed_by")
        .order_by("-triggered_at")[:limit]
    )


# --- pipeline runs ------------------------------------------------------------------------------


def run_list(*, tenant: Tenant, limit: int = 50) -> list[PipelineRun]:
    return list(PipelineRun.objects.for_tenant(tenant).order_by("-started_at")[:limit])


def run_get(*, tenant: Tenant, run_id: int) -> PipelineRun:
    run = PipelineRun.objects.for_tenant(tenant).filter(pk=run_id).first()
    if run is None:
        raise Http404("No such run")
    return run


def next_scoring_at(*, tenant: Tenant, now: datetime) -> datetime:
    """When the scheduler next starts a scoring run (the start of the next scoring window,
    as pipeline.runs.window_key_for cuts them): playbooks are evaluated then."""
    seconds = max(1, tenant.scoring_interval_minutes) * 60
    start = (int(now.timestamp()) // seconds + 1) * seconds
    return datetime.fromtimestamp(start, tz=now.tzinfo)
