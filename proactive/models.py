"""Core domain: customers, signals and their daily rollups, risk models, scores, pipeline runs."""

from __future__ import annotations

import uuid

from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.utils import timezone

from accounts.scoping import TenantOwned


class Customer(TenantOwned):
    external_id = models.CharField(max_length=255)
    name = models.CharField(max_length=255, blank=True)
    email = models.EmailField(blank=True)
    signed_up_at = models.DateTimeField(null=True, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    email_unsubscribed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "external_id"], name="customer_tenant_external_uniq")
        ]

    def __str__(self) -> str:
        return self.name or self.external_id


class CustomerAttributeChange(TenantOwned):
    """The attribute values a customer took on at `valid_from` (when we learned them).

    Written by the customers upsert in the same statement, one row per customer and upsert that
    changed something, holding only the keys whose value differs from the stored one, so the
    value of a key as of T is the one in the latest row with valid_from <= T that names the key:
    what a model may know at a cut-off. A JSON null means no value (cleared). Customers that
    existed before this history started have one row from their `created_at` (migration 0010):
    the best knowledge we have.
    """

    # Written in bulk beside the customers upsert: no database FK checks per row (as Signal);
    # Django's on_delete still cascades. The unique index leads with the tenant.
    tenant = models.ForeignKey(
        "accounts.Tenant", on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, db_index=False, db_constraint=False)
    valid_from = models.DateTimeField()
    attributes = models.JSONField()  # {key: new value} for the keys that changed at valid_from

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "customer", "valid_from"], name="attributechange_uniq")
        ]

    def __str__(self) -> str:
        return f"{sorted(self.attributes)} from {self.valid_from:%Y-%m-%d %H:%M}"


class Signal(TenantOwned):
    """One usage event. `key` is the sender's idempotency key: never stored twice per tenant.

    Append-mostly and the largest table: time-ordered access goes through a BRIN index on
    `timestamp` and (tenant, customer, timestamp) for one customer's timeline; long windows
    are read from `SignalDaily`, not from here.
    """

    # No database FK constraints on the two largest, append-only tables (as Sentry does): a
    # deferred FK check per row and per column was ~40 % of ingestion's database time and takes
    # a FOR KEY SHARE lock on the tenant row for every signal. Ingestion resolves every customer id
    # from proactive_customer in the same transaction, and Django's on_delete still cascades
    # (tenant and customer deletes go through the ORM). No separate tenant index either: every
    # index below starts with tenant_id.
    tenant = models.ForeignKey(
        "accounts.Tenant", on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, db_index=False, db_constraint=False)
    key = models.CharField(max_length=128)
    name = models.CharField(max_length=100)
    timestamp = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="signal_tenant_key_uniq")]
        indexes = [
            models.Index(fields=["tenant", "customer", "timestamp"], name="signal_tenant_cust_ts"),
            # Point-in-time features read raw rows only for the partial days at window edges:
            # a (tenant, timestamp) range scan, one more btree to maintain on insert (measured in
            # docs/benchmarks.md). BRIN alone cannot separate tenants.
            models.Index(fields=["tenant", "timestamp"], name="signal_tenant_ts"),
            BrinIndex(fields=["timestamp"], name="signal_ts_brin", autosummarize=True),
        ]

    def __str__(self) -> str:
        return f"{self.name} @ {self.timestamp:%Y-%m-%d %H:%M}"


class SignalDaily(TenantOwned):
    """Per (customer, signal name, UTC day) count, maintained as signals arrive."""

    # Same trade-off as Signal: no database FK constraints, no tenant-only index.
    tenant = models.ForeignKey(
        "accounts.Tenant", on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, db_index=False, db_constraint=False)
    name = models.CharField(max_length=100)
    day = models.DateField()
    count = models.PositiveIntegerField(default=0)
    last_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "customer", "name", "day"], name="signaldaily_uniq")
        ]
        indexes = [models.Index(fields=["tenant", "day"], name="signaldaily_tenant_day")]


class SignalRollupDelta(TenantOwned):
    """One stored batch's contribution to SignalDaily and SignalName, not yet folded in.

    Ingestion appends one row per batch (the stored signals as a JSON array of
    [customer id, name, timestamp] or, with declared numeric properties, [customer id, name,
    timestamp, {property: value}]) instead of upserting the rollups inside the request;
    `proactive.rollups.rollups_fold` moves pending rows into the rollups (delete and upsert in one
    transaction: exactly once), and readers that must be exact union the pending rows in."""

    tenant = models.ForeignKey(
        "accounts.Tenant", on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    rows = models.TextField()  # JSON text, read as ::json (no jsonb conversion on the request path)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["tenant", "id"], name="signalrollupdelta_tenant_id")]


class SignalValueDaily(TenantOwned):
    """Per (customer, signal name, numeric property, UTC day): the sum and number of the values.

    Kept only for the properties the tenant declares (`Tenant.numeric_properties`, e.g.
    `purchase.amount`), folded from the rollup deltas with the counts; the risk model reads sums
    and means per window from it (`proactive.features.values`)."""

    tenant = models.ForeignKey(
        "accounts.Tenant", on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, db_index=False, db_constraint=False)
    name = models.CharField(max_length=100)
    key = models.CharField(max_length=64)
    day = models.DateField()
    total = models.FloatField(default=0.0)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "customer", "name", "key", "day"], name="signalvaluedaily_uniq"
            )
        ]


class SignalValueCoverage(TenantOwned):
    """Which declared properties `SignalValueDaily` holds the whole history of: ingestion follows
    the tenant's current declaration, so after it changes the readers rebuild the rollup once."""

    properties = models.JSONField(default=list)
    rebuilt_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="signalvaluecoverage_tenant_uniq")]

    def __str__(self) -> str:
        return f"value rollups of {self.properties}"


class SignalHourly(TenantOwned):
    """Per (customer, monitored signal name, UTC hour): the first and last hit in that hour.

    Kept only for names matching the tenant's monitoring patterns, in the same statement as the
    daily rollups: the incident detector counts customers per hour from it (`first_at <= T`
    keeps a run as of T point-in-time, even inside the current hour)."""

    tenant = models.ForeignKey(
        "accounts.Tenant", on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, db_index=False, db_constraint=False)
    name = models.CharField(max_length=100)
    hour = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "customer", "name", "hour"], name="signalhourly_uniq")
        ]
        indexes = [models.Index(fields=["tenant", "hour"], name="signalhourly_tenant_hour")]


class SignalHourlyCoverage(TenantOwned):
    """Which monitoring patterns `SignalHourly` holds history for: ingestion follows the tenant's
    current patterns, so after they change the detector rebuilds the history once."""

    patterns = models.JSONField(default=list)
    since = models.DateTimeField()
    rebuilt_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="signalhourlycoverage_tenant_uniq")]

    def __str__(self) -> str:
        return f"hourly rollups of {self.patterns}"


class SignalName(TenantOwned):
    """The catalogue of signal names a tenant actually sends (drives the default feature set)."""

    name = models.CharField(max_length=100)
    total = models.BigIntegerField(default=0)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="signalname_tenant_name_uniq")]

    def __str__(self) -> str:
        return self.name


class RiskModel(TenantOwned):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired (replaced by a newer model)"
        REJECTED = "rejected", "Rejected (worse than the active model)"
        INSUFFICIENT_DATA = "insufficient_data", "Not trained: too little data"

    version = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=Status.choices)
    target = models.CharField(max_length=20)
    horizon_days = models.PositiveSmallIntegerField()
    as_of = models.DateTimeField()
    trained_at = models.DateTimeField(default=timezone.now)
    training_rows = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True)
    feature_names = models.JSONField(default=list, blank=True)
    feature_importance = models.JSONField(default=dict, blank=True)
    calibration = models.JSONField(default=dict, blank=True)
    booster = models.BinaryField(null=True, blank=True)
    notes = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "version"], name="riskmodel_tenant_version_uniq"),
            models.UniqueConstraint(
                fields=["tenant"], condition=models.Q(status="active"), name="riskmodel_one_active"
            ),
        ]

    def __str__(self) -> str:
        return f"v{self.version} ({self.status})"


class RiskScore(TenantOwned):
    """The latest score per customer (upserted by each scoring run)."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, db_index=False)
    model = models.ForeignKey(RiskModel, null=True, blank=True, on_delete=models.SET_NULL)
    score = models.FloatField()
    scored_at = models.DateTimeField()
    reasons = models.JSONField(default=list, blank=True)
    rule_based = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "customer"], name="riskscore_tenant_cust_uniq")
        ]
        # Keyset pages of the scores API walk (score desc, id desc) from a cursor.
        indexes = [models.Index(fields=["tenant", "-score", "-id"], name="riskscore_tenant_score_id")]


class RiskScoreDaily(TenantOwned):
    """One score per customer per day, for risk-over-time charts."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, db_index=False)
    day = models.DateField()
    score = models.FloatField()
    model_version = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "customer", "day"], name="riskscoredaily_uniq")
        ]


class PipelineRun(TenantOwned):
    """One run of features -> (train) -> score -> playbooks -> campaigns for a tenant.

    `window_key` makes a scheduled run idempotent: two schedulers firing for the same
    (tenant, kind, window) hit the unique constraint and the second one skips.
    """

    class Kind(models.TextChoices):
        SCORE = "score", "Score and evaluate playbooks"
        TRAIN = "train", "Train, score and evaluate playbooks"
        MONITOR = "monitor", "Look for incidents in error signals"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(max_length=20, default="schedule")
    window_key = models.CharField(max_length=64)
    as_of = models.DateTimeField()
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    steps = models.JSONField(default=list, blank=True)
    progress = models.JSONField(default=dict, blank=True)
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "kind", "window_key"], name="pipelinerun_window_uniq")
        ]
        indexes = [models.Index(fields=["tenant", "-started_at"], name="pipelinerun_tenant_started")]

    def __str__(self) -> str:
        return f"{self.kind} {self.as_of:%Y-%m-%d %H:%M} {self.status}"


class PageSnapshot(TenantOwned):
    """A page's aggregates as computed by the last pipeline run (dashboard.snapshots): at
    100,000 customers they scan every outreach row, too slow to do on each page view."""

    name = models.CharField(max_length=40)
    computed_at = models.DateTimeField()
    data = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="pagesnapshot_tenant_name_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.name} of tenant {self.tenant_id} at {self.computed_at:%Y-%m-%d %H:%M}"


class InsightRun(TenantOwned):
    """One discovery of insights, made by a training run (proactive.insights)."""

    class Status(models.TextChoices):
        COMPUTED = "computed", "Computed"
        INSUFFICIENT_DATA = "insufficient_data", "Not enough data"

    pipeline_run = models.ForeignKey(PipelineRun, null=True, blank=True, on_delete=models.SET_NULL)
    as_of = models.DateTimeField()
    computed_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=20, choices=Status.choices)
    reason = models.TextField(blank=True)
    target = models.CharField(max_length=20)
    horizon_days = models.PositiveSmallIntegerField()
    base_rate = models.FloatField(null=True, blank=True)
    stats = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            # A retried pipeline run replaces its discovery rather than adding a second one.
            models.UniqueConstraint(fields=["tenant", "pipeline_run"], name="insightrun_tenant_run_uniq")
        ]
        indexes = [models.Index(fields=["tenant", "-computed_at"], name="insightrun_tenant_computed")]

    def __str__(self) -> str:
        return f"insights as of {self.as_of:%Y-%m-%d %H:%M} ({self.status})"


class Insight(TenantOwned):
    """A condition whose customers reached the prediction target more often, on later data."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    insight_run = models.ForeignKey(InsightRun, on_delete=models.CASCADE, related_name="insights")
    rank = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=20)
    condition = models.JSONField()
    text = models.TextField()
    customers_now = models.PositiveIntegerField()
    rate = models.FloatField()
    base_rate = models.FloatField()
    lift = models.FloatField()
    ci_low = models.FloatField()
    ci_high = models.FloatField()
    p_value = models.FloatField()
    q_value = models.FloatField()
    rows = models.PositiveIntegerField(help_text="Matching (customer, cut-off) rows on the later cut-offs.")
    reached = models.PositiveIntegerField()
    train = models.JSONField(default=dict, blank=True)
    backtest = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "insight_run", "rank"], name="insight_tenant_run_rank_uniq"
            )
        ]
        ordering = ["rank"]

    def __str__(self) -> str:
        return self.text
