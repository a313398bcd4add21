"""Where one 5,000-signal batch spends its time, stage by stage (in process, the functions the
API calls), beside a raw COPY of the same rows in the same loop; medians over N batches. The
fold of the batch's rollup delta (a worker's job, not the request's) is timed apart.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/p2 .venv/bin/python bench/ingest_stages.py 7 [--declare]

With `--declare` the tenant declares `session.started.minutes` (a fifth of the rows carry it), so
the delta rows carry the values and the fold keeps their daily sums.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from datetime import timedelta

from _setup import django_setup
from ingest_bench import COPY_SQL, make_rows


def main() -> None:
    django_setup()
    import psycopg
    from django.db import connection, transaction
    from django.utils import timezone

    from accounts.services import tenant_create
    from proactive import ingest
    from proactive.api import _loads_signals
    from proactive.rollups import DELTA_SQL, rollups_fold

    batches = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    stamp = str(time.time()).replace(".", "")
    api_tenant, _ = tenant_create(slug=f"stages-{stamp}"[:50], name="stages api")
    if "--declare" in sys.argv:
        api_tenant.numeric_properties = ["session.started.minutes"]
        api_tenant.save()
    copy_tenant, _ = tenant_create(slug=f"stagesc-{stamp}"[:50], name="stages copy")
    with connection.cursor() as cur:
        for t in (api_tenant, copy_tenant):
            cur.execute(
                "INSERT INTO proactive_customer (tenant_id, external_id, name, email, attributes, created_at, "  # noqa: E501
                "updated_at) SELECT %s, 'c' || lpad(g::text, 6, '0'), '', '', '{}', now(), now() "
                "FROM generate_series(0, 4999) g",
                [t.pk],
            )
        cur.execute("SELECT external_id, id FROM proactive_customer WHERE tenant_id = %s", [copy_tenant.pk])
        copy_ids = dict(cur.fetchall())
    dsn = connection.get_connection_params()
    for extra in ("cursor_factory", "context", "prepare_threshold"):
        dsn.pop(extra, None)
    times: dict[str, list[float]] = {}

    def mark(label: str, began: float) -> float:
        now = time.perf_counter()
        times.setdefault(label, []).append((now - began) * 1000)
        return now

    tid = api_tenant.pk
    for n in range(batches):
        raw = make_rows(5000, 5000, f"{stamp}s{n}")
        body = json.dumps({"signals": raw}).encode()
        b = time.perf_counter()
        data = _loads_signals(body)["signals"]
        b = mark("JSON parse (orjson) + depth check", b)
        now = timezone.now()
        _errors, batch = ingest.signals_validate(data, now + timedelta(hours=1), check_nul=False)
        b = mark("validation, dedupe by key, sort, timestamps to text", b)
        with transaction.atomic(), connection.cursor() as c:
            cur = c.cursor
            ids = ingest._customer_ids(cur, tid, sorted({r[1] for r in batch}), now)
            b = mark("resolve customers", b)
            payload = ingest._copy_payload(tid, ids, batch, now)
            b = mark("build the COPY payload", b)
            with transaction.atomic(), cur.copy(ingest.COPY_SIGNALS_SQL) as copy:
                copy.write(payload)
            b = mark("COPY into proactive_signal (in a savepoint)", b)
            keys = ingest._declared(cur, tid)
            stored = ingest._delta_rows(((ids[e], nm, ts, p) for _k, e, nm, ts, p in batch), keys)
            b = mark("declared numeric properties (lookup, extract)", b)
            cur.execute(DELTA_SQL, [tid, ingest._dumps(stored), now])
            b = mark("rollup delta (one row)", b)
        b = mark("commit", b)
        rollups_fold(tenant_id=tid)
        mark("fold into SignalDaily + SignalName (worker, off the request)", b)
        with psycopg.connect(**dsn) as conn:
            b = time.perf_counter()
            with conn.transaction(), conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
                received = timezone.now().isoformat()
                for r in raw:
                    copy.write_row(
                        (copy_tenant.pk, copy_ids[r["customer"]], r["id"], r["name"], r["timestamp"],
                         json.dumps(r["properties"]), received)
                    )  # fmt: skip
            mark("raw COPY of the same rows (baseline)", b)
    total = 0.0
    for label, values in times.items():
        median = statistics.median(values)
        if not label.startswith(("raw", "fold")):
            total += median
        print(f"| {label} | {median:.1f} |")
    print(f"| API total | {total:.1f} |")


if __name__ == "__main__":
    main()
