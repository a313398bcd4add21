"""Planner statistics kept fresh by the product itself.

PostgreSQL plans from table statistics that autovacuum refreshes, but it may be off (it is on this
project's development machine) or not yet have run after a bulk load. With statistics that do not
know a tenant's rows the planner takes its tables for empty and nests loops: 22 s per ingestion
batch or a 2-minute incident page at 100,000 customers (docs/benchmarks.md). So the beat, and
each pipeline run before it reads, analyzes the project's tables that changed a lot since their
last ANALYZE, with autovacuum's own default rule (50 rows + 10%).
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import connection, transaction

log = logging.getLogger(__name__)

APPS = ("accounts", "proactive", "campaigns", "webhooks")
THRESHOLD_ROWS = 50
THRESHOLD_SHARE = 0.1
LOCK_KEY = 0x5045_5441_4E41  # pg_try_advisory_xact_lock key: one analyzer at a time

STALE_SQL = """
SELECT relname FROM pg_stat_user_tables
WHERE schemaname = current_schema() AND split_part(relname, '_', 1) = ANY(%(apps)s)
  AND n_mod_since_analyze > %(rows)s + %(share)s * greatest(n_live_tup, 0)
ORDER BY n_mod_since_analyze DESC
"""


def stale_tables() -> list[str]:
    """The project's tables whose rows changed by more than 50 + 10% since their last ANALYZE."""
    with connection.cursor() as cur:
        cur.execute(STALE_SQL, {"apps": list(APPS), "rows": THRESHOLD_ROWS, "share": THRESHOLD_SHARE})
        return [r[0] for r in cur.fetchall()]


def analyze_stale_tables() -> list[str]:
    """ANALYZE each stale table (skipped when another process is analyzing); returns their names."""
    tables = stale_tables()
    if not tables:
        return []
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_xact_lock(%s)", [LOCK_KEY])
        if not cur.fetchone()[0]:
            return []
        for table in tables:
            cur.execute(f'ANALYZE "{table}"')  # a name read from pg_stat_user_tables, not input
    log.info("analyzed %s", ", ".join(tables))
    return tables


@shared_task(name="proactive.analyze_stale_tables", ignore_result=True)
def analyze_stale_tables_task(**kwargs: object) -> list[str]:
    return analyze_stale_tables()
