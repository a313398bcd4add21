"""Signals/s through the HTTP API (gunicorn, batches of 5,000) beside raw COPY of the same rows
into the same table, in one run, over several rounds (medians reported).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/p2 .venv/bin/python bench/ingest_bench.py \
        --rounds 3 --round-signals 50000 --customers 5000 --clients 2 --workers 2

Each round generates fresh rows (new idempotency keys) and loads them twice, in alternating
order so that neither side always meets the larger table:

- **API**: `--clients` threads POST batches of `--batch` to `/api/v1/signals/batch` on one
  gunicorn (`--workers` sync workers). The API does everything the contract needs: auth, rate
  limit, JSON parsing, per-record validation, customer resolution, dedupe by key, daily rollups
  and the name catalogue, all in one transaction per batch.
- **Raw COPY, batched**: the same rows, `COPY proactive_signal ... FROM STDIN` in the same
  batches, one committed transaction each, from `--clients` parallel connections: what a bulk
  loader with the API's batching, concurrency and durability would reach.
- **Raw COPY, single**: the same rows again in one COPY and one transaction (no per-batch
  commits: the loader's best case).

Both COPY baselines write exactly the columns the API stores (tenant, customer id, key, name,
timestamp, properties, received_at) into the same table with the same indexes and constraints,
each into its own tenant (keys are unique per tenant); customers are created up front for every
tenant (the API tenant through `/api/v1/customers/batch`), so no side pays for creating them.
The ratio of a round is API rows/s over the faster of the two COPY baselines of that round.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import psycopg
import requests
from _setup import ROOT, django_setup

NAMES = ["session.started", "feature.export", "feature.report_viewed", "error.sync_failed", "support.contact"]


def make_rows(n: int, customers: int, seed: str) -> list[dict]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    rows = [
        {
            "id": f"evt-{seed}-{i:09d}",
            "customer": f"c{rng.randrange(customers):06d}",
            "name": rng.choice(NAMES),
            "timestamp": (now - timedelta(seconds=rng.randrange(120 * 86400))).isoformat(),
            "properties": {"plan": "pro"} if i % 10 == 0 else {},
        }
        for i in range(n)
    ]
    for row in rows:  # sessions carry their length: a numeric property a tenant may declare
        if row["name"] == "session.started":
            row["properties"] = {**row["properties"], "minutes": round(rng.uniform(1, 60), 1)}
    return rows


COPY_SQL = (
    "COPY proactive_signal (tenant_id, customer_id, key, name, timestamp, properties, received_at) FROM STDIN"
)


def copy_rows(conn: psycopg.Connection, tenant_id: int, ids: dict[str, int], rows: list[dict]) -> None:
    """One COPY of `rows` in one transaction (text values, as a bulk loader holds them)."""
    received = datetime.now(UTC).isoformat()
    with conn.transaction(), conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
        for r in rows:
            copy.write_row(
                (
                    tenant_id,
                    ids[r["customer"]],
                    r["id"],
                    r["name"],
                    r["timestamp"],
                    json.dumps(r["properties"]),
                    received,
                )
            )


def load_avg() -> float:
    return round(os.getloadavg()[0], 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--round-signals", type=int, default=50_000)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    args = parser.parse_args()
    django_setup()
    from django.db import connection

    from accounts.services import api_key_create, tenant_create

    if not args.port:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            args.port = probe.getsockname()[1]
    stamp = int(time.time())
    api_tenant, _ = tenant_create(slug=f"bench-api-{stamp}", name="bench api")
    batched_tenant, _ = tenant_create(slug=f"bench-copyb-{stamp}", name="bench copy batched")
    single_tenant, _ = tenant_create(slug=f"bench-copys-{stamp}", name="bench copy single")
    secret = api_key_create(tenant=api_tenant).secret
    externals = [f"c{i:06d}" for i in range(args.customers)]
    ids: dict[int, dict[str, int]] = {}
    with connection.cursor() as cur:
        for tenant in (batched_tenant, single_tenant):
            cur.execute(
                "INSERT INTO proactive_customer (tenant_id, external_id, name, email, attributes, "
                "created_at, updated_at) SELECT %s, x, '', '', '{}', now(), now() FROM unnest(%s::text[]) x",
                [tenant.pk, externals],
            )
            cur.execute("SELECT external_id, id FROM proactive_customer WHERE tenant_id = %s", [tenant.pk])
            ids[tenant.pk] = dict(cur.fetchall())
    dsn = connection.get_connection_params()
    dsn.pop("cursor_factory", None)
    dsn.pop("context", None)
    dsn.pop("prepare_threshold", None)

    env = {
        **os.environ,
        "DEBUG": "0",
        "HTTPS_ONLY": "0",
        "SECRET_KEY": "bench-only",
        "API_RATE_LIMIT_PER_MINUTE": "1000000",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "proactive.wsgi:application", "-w", str(args.workers),
         "-b", f"127.0.0.1:{args.port}", "--log-level", "warning", "--timeout", "300"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{args.port}"
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    local = threading.local()

    def post(path: str, body: str) -> dict:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        r = local.session.post(f"{url}{path}", data=body, headers=headers, timeout=300)
        assert r.status_code == 200, r.text[:300]
        return r.json()

    conns: queue.Queue[psycopg.Connection] = queue.Queue()
    for _ in range(args.clients):
        conns.put(psycopg.connect(**dsn))

    def copy_batch(tenant_id: int, chunk: list[dict]) -> None:
        conn = conns.get()
        try:
            copy_rows(conn, tenant_id, ids[tenant_id], chunk)
        finally:
            conns.put(conn)

    def api(bodies: list[str], expected: int) -> float:
        began = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(lambda b: post("/api/v1/signals/batch", b), bodies))
        elapsed = time.perf_counter() - began
        assert sum(r["accepted"] for r in results) == expected, results[:1]
        return elapsed

    def batched(chunks: list[list[dict]]) -> float:
        began = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(lambda c: copy_batch(batched_tenant.pk, c), chunks))
        return time.perf_counter() - began

    def single(rows: list[dict]) -> float:
        with psycopg.connect(**dsn) as conn:
            began = time.perf_counter()
            copy_rows(conn, single_tenant.pk, ids[single_tenant.pk], rows)
            return time.perf_counter() - began

    rounds = []
    try:
        for _ in range(240):
            try:
                if requests.get(f"{url}/healthz", timeout=5).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        for i in range(0, len(externals), 5000):
            post(
                "/api/v1/customers/batch",
                json.dumps({"customers": [{"external_id": e} for e in externals[i : i + 5000]]}),
            )
        warm = make_rows(args.batch, args.customers, f"{stamp}w")
        # Warm both gunicorn workers (connection, imports, temporary objects) before timing.
        with ThreadPoolExecutor(args.clients) as pool:
            list(
                pool.map(
                    lambda b: post("/api/v1/signals/batch", json.dumps({"signals": b})),
                    [warm[: len(warm) // 2], warm[len(warm) // 2 :]],
                )
            )
        for n in range(args.rounds):
            rows = make_rows(args.round_signals, args.customers, f"{stamp}r{n}")
            chunks = [rows[i : i + args.batch] for i in range(0, len(rows), args.batch)]
            bodies = [json.dumps({"signals": c}) for c in chunks]

            order = [
                ("api", api, (bodies, len(rows))),
                ("copy_batched", batched, (chunks,)),
                ("copy_single", single, (rows,)),
            ]
            if n % 2:
                order.reverse()
            secs = {}
            load = load_avg()
            for label, fn, fn_args in order:
                secs[label] = fn(*fn_args)
            rate = {k: round(len(rows) / v) for k, v in secs.items()}
            rate["ratio"] = round(rate["api"] / max(rate["copy_batched"], rate["copy_single"]), 2)
            rate["load"] = load
            rounds.append(rate)
            print(json.dumps({"round": n + 1, **rate}), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
        while not conns.empty():
            conns.get().close()
    out = {
        "rounds": args.rounds,
        "signals_per_round": args.round_signals,
        "batch": args.batch,
        "clients": args.clients,
        "gunicorn_workers": args.workers,
    }
    for key in ("api", "copy_batched", "copy_single", "ratio"):
        out[f"median_{key}"] = statistics.median(r[key] for r in rounds)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
