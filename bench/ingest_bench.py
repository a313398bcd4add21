"""Signals/s through the HTTP API (gunicorn, batches of 5,000) beside raw COPY of the same rows
into the same table, in one run.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/h1 .venv/bin/python bench/ingest_bench.py \
        --signals 200000 --customers 5000 --clients 2 --workers 2

The API path does everything the contract needs (auth, rate limit, JSON parsing, per-record
validation, unknown customers, dedupe by key, daily rollups and the name catalogue); raw COPY
writes the same rows straight into proactive_signal (same indexes and constraints), nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import requests
from _setup import ROOT, django_setup


def make_rows(n: int, customers: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    names = [
        "session.started",
        "feature.export",
        "feature.report_viewed",
        "error.sync_failed",
        "support.contact",
    ]
    return [
        {
            "id": f"evt-{seed}-{i:09d}",
            "customer": f"c{rng.randrange(customers):06d}",
            "name": rng.choice(names),
            "timestamp": (now - timedelta(seconds=rng.randrange(120 * 86400))).isoformat(),
            "properties": {"plan": "pro"} if i % 10 == 0 else {},
        }
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--signals", type=int, default=200_000)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    args = parser.parse_args()
    django_setup()
    from django.conf import settings
    from django.db import connection

    from accounts.services import api_key_create, tenant_create

    if not args.port:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            args.port = probe.getsockname()[1]
    stamp = int(time.time())
    api_tenant, _ = tenant_create(slug=f"bench-api-{stamp}", name="bench api")
    copy_tenant, _ = tenant_create(slug=f"bench-copy-{stamp}", name="bench copy")
    secret = api_key_create(tenant=api_tenant).secret
    rows = make_rows(args.signals, args.customers, stamp)
    batches = [json.dumps({"signals": rows[i : i + args.batch]}) for i in range(0, len(rows), args.batch)]

    env = {
        **os.environ,
        "DEBUG": "0",
        "HTTPS_ONLY": "0",
        "SECRET_KEY": "bench-only",
        "API_RATE_LIMIT_PER_MINUTE": "1000000",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "proactive.wsgi:application",
            "-w",
            str(args.workers),
            "-b",
            f"127.0.0.1:{args.port}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{args.port}"
        for _ in range(120):
            try:
                if requests.get(f"{url}/healthz", timeout=5).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        session = requests.Session()
        headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        warm = session.post(f"{url}/api/v1/signals/batch", data=batches[0], headers=headers, timeout=120)
        assert warm.status_code == 200, warm.text[:300]

        def send(body: str) -> dict:
            with requests.Session() as s:
                r = s.post(f"{url}/api/v1/signals/batch", data=body, headers=headers, timeout=300)
            assert r.status_code == 200, r.text[:300]
            return r.json()

        began = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(send, batches[1:]))
        api_s = time.perf_counter() - began
        api_rows = sum(len(json.loads(b)["signals"]) for b in batches[1:])
        accepted = sum(r["accepted"] for r in results)
        assert accepted == api_rows, (accepted, api_rows)
    finally:
        server.terminate()
        server.wait(timeout=30)

    # Raw COPY of the same rows (customers resolved up front, as a bulk loader would).
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO proactive_customer (tenant_id, external_id, name, email, attributes, created_at, "
            "updated_at) SELECT %s, external_id, '', '', '{}', now(), now() FROM proactive_customer "
            "WHERE tenant_id = %s",
            [copy_tenant.pk, api_tenant.pk],
        )
        cur.execute("SELECT external_id, id FROM proactive_customer WHERE tenant_id = %s", [copy_tenant.pk])
        ids = dict(cur.fetchall())
    copy_rows = rows[args.batch :]
    began = time.perf_counter()
    with (
        connection.cursor() as cur,
        cur.cursor.copy(
            "COPY proactive_signal (tenant_id, customer_id, key, name, timestamp, properties, received_at) "
            "FROM STDIN"
        ) as copy,
    ):
        now = datetime.now(UTC).isoformat()
        for r in copy_rows:
            copy.write_row(
                (
                    copy_tenant.pk,
                    ids[r["customer"]],
                    r["id"],
                    r["name"],
                    r["timestamp"],
                    json.dumps(r["properties"]),
                    now,
                )
            )
    copy_s = time.perf_counter() - began
    out = {
        "signals": api_rows,
        "batch": args.batch,
        "clients": args.clients,
        "gunicorn_workers": args.workers,
        "api_rows_per_s": round(api_rows / api_s),
        "copy_rows_per_s": round(len(copy_rows) / copy_s),
    }
    out["ratio"] = round(out["api_rows_per_s"] / out["copy_rows_per_s"], 2)
    out["autocommit"] = settings.DATABASES["default"].get("AUTOCOMMIT", True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
