"""Reads behind the tenant pages: overview, model, customers, pipeline runs and fatigue.

Every function takes the tenant explicitly and aggregates in SQL (one query per figure),
so a page costs the same number of queries with ten customers or 100,000.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Exists, F, Min, OuterRef, Q
from django.db.models.fields.json import KT, KeyTextTransform
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


# --- customer list: keyset pages and filters -------------------------------------------------------

# Risk bands over the latest score (RiskScore), as [low, high) ranges; "none" is "not scored yet".
RISK_BANDS: dict[str, tuple[str, float, float]] = {
    "high": ("High (50% or more)", 0.5, float("inf")),
    "medium": ("Medium (20-50%)", 0.2, 0.5),
    "low": ("Low (under 20%)", float("-inf"), 0.2),
}
UNSCORED_BAND = "none"
PLAN_OPTIONS_LIMIT = 50


@dataclass(frozen=True)
class CustomerFilters:
    query: str = ""
    band: str = ""  # "" (any), a RISK_BANDS key or UNSCORED_BAND
    plan: str = ""
    pending: bool = False

    @property
    def active(self) -> bool:
        return bool(self.query or self.band or self.plan or self.pending)


@dataclass(frozen=True)
class Cursor:
    """A position in the list: scored customers first (score desc, RiskScore id desc, the
    (tenant, -score, -id) index), then unscored ones (Customer id desc)."""

    score: float | None
    id: int

    def encode(self) -> str:
        return f"u{self.id}" if self.score is None else f"s{self.score!r}_{self.id}"

    @classmethod
    def decode(cls, raw: str) -> Cursor | None:
        """None for anything malformed (a hand-edited URL shows the first page, never a 500)."""
        try:
            if raw.startswith("u"):
                return cls(None, int(raw[1:]))
            if raw.startswith("s"):
                score, _, ident = raw[1:].partition("_")
                value = float(score)
                if value != value or value in (float("inf"), float("-inf")):
                    return None
                return cls(value, int(ident))
        except ValueError:
            return None
        return None


@dataclass
class CustomerPage:
    rows: list[dict[str, Any]]
    next_cursor: str | None
    prev_cursor: str | None
    first: bool


def _customer_q(filters: CustomerFilters, prefix: str) -> Q:
    q = Q()
    if filters.query:
        text = filters.query
        q &= (
            Q(**{f"{prefix}external_id__icontains": text})
            | Q(**{f"{prefix}name__icontains": text})
            | Q(**{f"{prefix}email__icontains": text})
        )
    if filters.plan:
        q &= Q(**{f"{prefix}attributes__plan": filters.plan})
    return q


def _pending_outreach(tenant: Tenant, customer_ref: str) -> Exists:
    return Exists(
        Outreach.objects.for_tenant(tenant).filter(
            customer=OuterRef(customer_ref), status=Outreach.Status.PENDING_REVIEW
        )
    )


def _scored_rows(
    tenant: Tenant, filters: CustomerFilters, cursor: Cursor | None, forward: bool, limit: int
) -> list[dict[str, Any]]:
    qs = RiskScore.objects.for_tenant(tenant).filter(_customer_q(filters, "customer__"))
    if filters.band in RISK_BANDS:
        _, low, high = RISK_BANDS[filters.band]
        if low != float("-inf"):
            qs = qs.filter(score__gte=low)
        if high != float("inf"):
            qs = qs.filter(score__lt=high)
    if filters.pending:
        qs = qs.filter(_pending_outreach(tenant, "customer_id"))
    if cursor is not None and cursor.score is not None:
        s, i = cursor.score, cursor.id
        if forward:
            qs = qs.filter(Q(score__lt=s) | Q(score=s, id__lt=i))
        else:
            qs = qs.filter(Q(score__gt=s) | Q(score=s, id__gt=i))
    qs = qs.order_by("-score", "-id") if forward else qs.order_by("score", "id")
    return [
        dict(row)
        for row in qs.values(
            "id",
            "score",
            "scored_at",
            external_id=F("customer__external_id"),
            name=F("customer__name"),
            email=F("customer__email"),
            signed_up_at=F("customer__signed_up_at"),
            plan=KeyTextTransform("plan", "customer__attributes"),
        )[:limit]
    ]


def _unscored_rows(
    tenant: Tenant, filters: CustomerFilters, cursor: Cursor | None, forward: bool, limit: int
) -> list[dict[str, Any]]:
    qs = (
        Customer.objects.for_tenant(tenant)
        .filter(_customer_q(filters, ""))
        .filter(~Exists(RiskScore.objects.for_tenant(tenant).filter(customer=OuterRef("pk"))))
    )
    if filters.pending:
        qs = qs.filter(_pending_outreach(tenant, "pk"))
    if cursor is not None and cursor.score is None:
        qs = qs.filter(id__lt=cursor.id) if forward else qs.filter(id__gt=cursor.id)
    qs = qs.order_by("-id") if forward else qs.order_by("id")
    values = qs.values("id", "external_id", "name", "email", "signed_up_at", plan=KT("attributes__plan"))
    return [{**row, "score": None} for row in values[:limit]]


def customer_page(
    *,
    tenant: Tenant,
    filters: CustomerFilters,
    after: str = "",
    before: str = "",
    limit: int = CUSTOMER_PAGE_SIZE,
) -> CustomerPage:
    """One page of the tenant's customers matching `filters`, riskiest first then the unscored.

    Keyset paging (`after`/`before` a cursor), so page 2,000 costs what page 1 does: one index walk
    of (tenant, -score, -id) for scored customers, and a second query only on the page where the
    scored ones run out. No COUNT: `customer_count` says how many match, cached."""
    forward = not before
    cursor = Cursor.decode(after if forward else before)
    if cursor is None:
        forward = True
    want = limit + 1
    scored_ok = filters.band != UNSCORED_BAND
    unscored_ok = filters.band in ("", UNSCORED_BAND)
    rows: list[dict[str, Any]] = []
    if forward or cursor is None:
        in_scored = cursor is None or cursor.score is not None
        if scored_ok and in_scored:
            rows = _scored_rows(tenant, filters, cursor, True, want)
        if unscored_ok and len(rows) < want:
            unscored_cursor = cursor if cursor is not None and cursor.score is None else None
            rows += _unscored_rows(tenant, filters, unscored_cursor, True, want - len(rows))
        more = len(rows) > limit
        rows = rows[:limit]
        first = cursor is None
        has_prev, has_next = not first, more
    else:
        if unscored_ok and cursor.score is None:
            rows = _unscored_rows(tenant, filters, cursor, False, want)
        if scored_ok and len(rows) < want:
            scored_cursor = cursor if cursor.score is not None else None
            rows += _scored_rows(tenant, filters, scored_cursor, False, want - len(rows))
        more = len(rows) > limit
        rows = list(reversed(rows[:limit]))
        first = not more
        has_prev, has_next = more, True
    if not rows:
        return CustomerPage(rows=[], next_cursor=None, prev_cursor=None, first=first)

    def key(row: dict[str, Any]) -> str:
        return Cursor(row["score"], row["id"]).encode()

    return CustomerPage(
        rows=rows,
        next_cursor=key(rows[-1]) if has_next else None,
        prev_cursor=key(rows[0]) if has_prev else None,
        first=first,
    )


def customer_count(*, tenant: Tenant, filters: CustomerFilters) -> int:
    """How many customers match, kept for a few minutes (a COUNT over every customer at 100,000)."""

    def compute() -> int:
        qs = Customer.objects.for_tenant(tenant).filter(_customer_q(filters, ""))
        if filters.band in RISK_BANDS:
            _, low, high = RISK_BANDS[filters.band]
            scores = RiskScore.objects.for_tenant(tenant).filter(customer=OuterRef("pk"))
            if low != float("-inf"):
                scores = scores.filter(score__gte=low)
            if high != float("inf"):
                scores = scores.filter(score__lt=high)
            qs = qs.filter(Exists(scores))
        elif filters.band == UNSCORED_BAND:
            qs = qs.filter(~Exists(RiskScore.objects.for_tenant(tenant).filter(customer=OuterRef("pk"))))
        if filters.pending:
            qs = qs.filter(_pending_outreach(tenant, "pk"))
        return qs.count()

    digest = hashlib.sha256(f"{filters.query}\x00{filters.plan}".encode()).hexdigest()[:32]
    parts = (digest, filters.band, int(filters.pending))
    return page_cached(tenant=tenant, name="customer-count", parts=parts, compute=compute)


def customer_plans(*, tenant: Tenant) -> list[str]:
    """The `plan` attribute values the tenant's customers carry (for the filter), cached."""

    def compute() -> list[str]:
        values = (
            Customer.objects.for_tenant(tenant)
            .annotate(plan=KT("attributes__plan"))
            .exclude(plan__isnull=True)
            .exclude(plan="")
            .order_by("plan")
            .values_list("plan", flat=True)
            .distinct()[:PLAN_OPTIONS_LIMIT]
        )
        return list(values)

    return page_cached(tenant=tenant, name="customer-plans", parts=(), compute=compute)


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


def customer_start_day(
    *, tenant: Tenant, customer: Customer, signal_days: list[tuple[str, date, int]]
) -> date:
    """The first day the customer can have a risk, in the tenant's zone: sign-up; unknown, the
    earlier of its creation here and its first signal in `signal_days` (imported history)."""
    if customer.signed_up_at is not None:
        return timezone.localtime(customer.signed_up_at, tenant.tz).date()
    created = timezone.localtime(customer.created_at, tenant.tz).date()
    return min([created, *(day for _, day, _ in signal_days)])


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
