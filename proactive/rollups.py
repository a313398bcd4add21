"""Daily rollups (SignalDaily) and the name catalogue (SignalName), maintained off the request path.

Ingestion appends one `SignalRollupDelta` row per stored batch, in the batch's transaction (so a
delta exists exactly when its signals do). `rollups_fold` later deletes pending deltas and adds
them to the rollups in one statement, so each delta is counted exactly once, also with several
folders running (`FOR UPDATE SKIP LOCKED`). A worker folds every few seconds and the pipeline
folds before its steps; readers that must be exact as of any time (features, playbooks) read
`DAILY_SOURCE` / `NAMES_SOURCE`, the folded rollups plus the pending deltas in the same snapshot,
so whether a batch is folded yet never changes a result.

Why: the upsert of the rollups cost more than the COPY of the signals themselves (one new
SignalDaily row per signal at realistic spreads); a delta row is one small insert per batch.
"""

from __future__ import annotations

from celery import shared_task
from django.db import connection, transaction

# Advisory lock class of a tenant's value rollup (the tenant id is the second key): taken shared by
# each ingestion batch and each fold, exclusive while `proactive.features.values.values_rebuild`
# recounts a range of the tenant's customers.
VALUES_LOCK = 7201

DELTA_SQL = "INSERT INTO proactive_signalrollupdelta (tenant_id, rows, created_at) VALUES (%s, %s, %s)"

# Pending deltas as SignalDaily-shaped rows (count 1 per signal). A reader groups and sums, so
# a (customer, name, day) present in both branches adds up; tenant, customer and day predicates
# on the outer query are pushed into both branches.
DAILY_SOURCE = """(
    SELECT tenant_id, customer_id, name, day, count, last_at FROM proactive_signaldaily
    UNION ALL
    SELECT p.tenant_id, (e->>0)::bigint, e->>1, ((e->>2)::timestamptz AT TIME ZONE 'UTC')::date, 1,
           (e->>2)::timestamptz
    FROM proactive_signalrollupdelta p, json_array_elements(p.rows::json) e
)"""


# SignalValueDaily with the pending deltas' values added, the same way: `tenant_id, customer_id,
# name, key, day, total, count` rows to group and sum.
VALUE_SOURCE = """(
    SELECT tenant_id, customer_id, name, key, day, total, count FROM proactive_signalvaluedaily
    UNION ALL
    SELECT p.tenant_id, (e->>0)::bigint, e->>1, x.key, ((e->>2)::timestamptz AT TIME ZONE 'UTC')::date,
           x.value::float8, 1
    FROM proactive_signalrollupdelta p, json_array_elements(p.rows::json) e, json_each_text(e->3) x
    WHERE json_array_length(e) > 3
)"""


# SignalName rows of one tenant with the pending deltas added: `name, total, first_seen,
# last_seen`. Takes the tenant id as the named parameter `tenant_id` (proactive.sql).
NAMES_SOURCE = """(
    SELECT name, sum(total)::bigint AS total, min(first_seen) AS first_seen, max(last_seen) AS last_seen
    FROM (
        SELECT name, total, first_seen, last_seen FROM proactive_signalname WHERE tenant_id = %(tenant_id)s
        UNION ALL
        SELECT e->>1, 1, (e->>2)::timestamptz, (e->>2)::timestamptz
        FROM proactive_signalrollupdelta p, json_array_elements(p.rows::json) e
        WHERE p.tenant_id = %(tenant_id)s
    ) n GROUP BY name
)"""


# Deletes up to `limit` pending deltas (of one tenant, or of all when tenant is null) and adds
# them to the rollups, each upsert in lock order so that concurrent folds cannot deadlock.
FOLD_SQL = """
WITH picked AS (
    SELECT id FROM proactive_signalrollupdelta
    WHERE (%(tenant)s::bigint IS NULL OR tenant_id = %(tenant)s::bigint)
      -- not a tenant whose value rollup is being rebuilt (proactive.features.values.VALUES_LOCK)
      AND pg_try_advisory_xact_lock_shared(%(values_lock)s, tenant_id::int)
    ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
), gone AS (
    DELETE FROM proactive_signalrollupdelta d USING picked WHERE d.id = picked.id
    RETURNING d.tenant_id, d.rows
), r AS (
    SELECT g.tenant_id, (e->>0)::bigint AS customer_id, e->>1 AS name, (e->>2)::timestamptz AS ts,
           e->3 AS vals
    FROM gone g, json_array_elements(g.rows::json) e
), vals AS (
    -- Declared numeric properties only (ingestion adds them to a delta row as its 4th element).
    INSERT INTO proactive_signalvaluedaily AS v (tenant_id, customer_id, name, key, day, total, count)
    SELECT r.tenant_id, r.customer_id, r.name, x.key, (r.ts AT TIME ZONE 'UTC')::date,
           sum(x.value::float8), count(*)
    FROM r, json_each_text(r.vals) x
    WHERE r.vals IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (tenant_id, customer_id, name, key, day)
    DO UPDATE SET total = v.total + EXCLUDED.total, count = v.count + EXCLUDED.count
), hourly AS (
    -- Monitored names only (the tenant's monitoring patterns), for the incident detector.
    INSERT INTO proactive_signalhourly AS h (tenant_id, customer_id, name, hour, count, first_at, last_at)
    SELECT r.tenant_id, r.customer_id, r.name, date_trunc('hour', r.ts, 'UTC'), count(*), min(r.ts), max(r.ts)
    FROM r JOIN accounts_tenant t ON t.id = r.tenant_id
    WHERE EXISTS (
        SELECT 1 FROM jsonb_array_elements_text(t.monitoring -> 'signals') AS p
        WHERE p = r.name OR (right(p, 1) = '*' AND starts_with(r.name, left(p, -1)))
    )
    GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (tenant_id, customer_id, name, hour)
    DO UPDATE SET count = h.count + EXCLUDED.count, first_at = least(h.first_at, EXCLUDED.first_at),
        last_at = greatest(h.last_at, EXCLUDED.last_at)
), daily AS (
    INSERT INTO proactive_signaldaily AS d (tenant_id, customer_id, name, day, count, last_at)
    SELECT tenant_id, customer_id, name, (ts AT TIME ZONE 'UTC')::date, count(*), max(ts)
    FROM r GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
    ON CONFLICT (tenant_id, customer_id, name, day)
    DO UPDATE SET count = d.count + EXCLUDED.count, last_at = greatest(d.last_at, EXCLUDED.last_at)
), names AS (
    INSERT INTO proactive_signalname AS n (tenant_id, name, total, first_seen, last_seen)
    SELECT tenant_id, name, count(*), min(ts), max(ts) FROM r GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (tenant_id, name) DO UPDATE SET total = n.total + EXCLUDED.total,
        first_seen = least(n.first_seen, EXCLUDED.first_seen),
        last_seen = greatest(n.last_seen, EXCLUDED.last_seen)
)
SELECT count(*) FROM gone
"""


def rollups_fold(*, tenant_id: int | None = None, limit: int = 100) -> int:
    """Fold pending deltas into the rollups (one tenant's, or every tenant's); returns how many
    deltas were folded. Deltas another folder holds are skipped, not waited for."""
    folded = 0
    while True:
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute(FOLD_SQL, {"tenant": tenant_id, "limit": limit, "values_lock": VALUES_LOCK})
            n = cur.fetchone()[0]
        folded += n
        if n < limit:
            return folded


@shared_task(name="proactive.rollups_fold", acks_late=True, ignore_result=True)
def rollups_fold_task(**kwargs: object) -> int:
    """The beat's fold of every tenant's pending deltas (idempotent: a redelivered task finds
    nothing left, two at once split the work)."""
    return rollups_fold()
