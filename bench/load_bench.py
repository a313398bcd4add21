"""Load on loopback: many customers polling the inbox, several senders ingesting, beside a bare view.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/h6 REDIS_URL=redis://127.0.0.1:6379/9 \
        .venv/bin/python bench/load_bench.py --seconds 8 --customers 500 --pollers 16 --senders 4

Seeds a tenant with `--customers` customers, each with two sent in-app messages, starts
gunicorn on proactive.wsgi (`--workers` sync workers), then runs three phases against the
same server: GET /healthz (a bare Django view, the baseline), GET /api/v1/inbox from
`--pollers` threads each acting as a random customer per request (publishable key + own
JWT), and POST /api/v1/signals/batch from `--senders` threads (`--batch` new signals per
request). Prints throughput and p50/p99 latency per phase, and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proactive.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-bench-only-secret-key")
os.environ.setdefault("HTTPS_ONLY", "0")
os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
os.environ.setdefault("INBOX_RATE_LIMIT_PER_MINUTE", "100000000")
os.environ.setdefault("API_RATE_LIMIT_PER_MINUTE", "100000000")


def seed(customers: int) -> tuple[str, str, list[str]]:
    import django

    django.setup()
    import jwt
    from django.core.management import call_command
    from django.utils import timezone

    from accounts.models import Tenant
    from accounts.services import api_key_create
    from campaigns.models import Outreach
    from proactive.models import Customer

    call_command("migrate", interactive=False, verbosity=0)
    tenant, _ = Tenant.objects.get_or_create(slug="bench-load", defaults={"name": "Load bench"})
    existing = set(Customer.objects.for_tenant(tenant).values_list("external_id", flat=True))
    Customer.objects.bulk_create(
        [
            Customer(tenant=tenant, external_id=f"lc{i:05d}", name=f"Customer {i}")
            for i in range(customers)
            if f"lc{i:05d}" not in existing
        ]
    )
    now = timezone.now()
    rows = (
        Customer.objects.for_tenant(tenant)
        .filter(external_id__startswith="lc")
        .values_list("pk", "external_id")
    )
    Outreach.objects.bulk_create(
        [
            Outreach(
                tenant=tenant, customer_id=pk, dedupe_key=f"load:{ext}:{k}", status="sent", sent_at=now,
                triggered_at=now, title=f"Message {k}", body="Hi **{{ customer.name }}**, see [the guide](https://example.com).",
            )
            for pk, ext in rows
            for k in range(2)
        ],
        ignore_conflicts=True,
    )  # fmt: skip
    exp = int(time.time()) + 3600
    tokens = [
        jwt.encode({"sub": ext, "exp": exp}, tenant.identity_secret, algorithm="HS256") for _, ext in rows
    ]
    return tenant.publishable_key, api_key_create(tenant=tenant).secret, tokens


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def phase(port: int, seconds: float, threads: int, request) -> dict:
    """Run `request(conn)` from `threads` threads for `seconds`; returns throughput and latency."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def loop() -> None:
        mine, bad = [], 0
        while time.monotonic() < stop:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            started = time.perf_counter()
            try:
                status = request(conn)
            except OSError:
                status = 0
            mine.append(time.perf_counter() - started)
            bad += status != 200
            conn.close()
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    began = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - began
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors[0],
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--customers", type=int, default=500)
    parser.add_argument("--pollers", type=int, default=16)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    pk, key, tokens = seed(args.customers)
    port = free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "proactive.wsgi:application", "-b", f"127.0.0.1:{port}",
         "-w", str(args.workers), "--access-logfile", "/dev/null"],
        cwd=ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)

        def bare(conn) -> int:
            conn.request("GET", "/healthz")
            return conn.getresponse().status

        def inbox(conn) -> int:
            token = random.choice(tokens)
            conn.request(
                "GET", "/api/v1/inbox", headers={"X-Publishable-Key": pk, "Authorization": f"Bearer {token}"}
            )
            response = conn.getresponse()
            response.read()
            return response.status

        sent = [0]
        sent_lock = threading.Lock()
        run = f"{time.time_ns():x}"
        stamp = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()

        def ingest(conn) -> int:
            with sent_lock:
                n = sent[0]
                sent[0] += 1
            signals = [
                {"id": f"{run}-{n}-{i}", "customer": f"lc{i % args.customers:05d}", "name": "session.started",
                 "timestamp": stamp}
                for i in range(args.batch)
            ]  # fmt: skip
            body = json.dumps({"signals": signals})
            conn.request(
                "POST", "/api/v1/signals/batch", body=body,
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            )  # fmt: skip
            response = conn.getresponse()
            response.read()
            return response.status

        phase(port, 2, args.pollers, inbox)  # warm up: caches, connections
        results = {
            f"bare view, {args.pollers} threads": phase(port, args.seconds, args.pollers, bare),
            f"inbox, {args.pollers} pollers x {args.customers} customers": phase(
                port, args.seconds, args.pollers, inbox
            ),
            f"bare view, {args.senders} threads": phase(port, args.seconds, args.senders, bare),
            f"signals batch x{args.batch}, {args.senders} senders": phase(
                port, args.seconds, args.senders, ingest
            ),
        }
    finally:
        web.terminate()
        web.wait(timeout=10)
    print(f"{'phase':<48} {'req':>6} {'err':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, r in results.items():
        row = f"{r['requests']:>6} {r['errors']:>4} {r['rps']:>8.1f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f}"
        print(f"{name:<48} {row}")
    names = list(results)
    print(f"inbox / bare view throughput: {results[names[1]]['rps'] / results[names[0]]['rps']:.2f}")
    ingest_rps = results[names[3]]["rps"]
    share = ingest_rps / results[names[2]]["rps"]
    print(f"signals/s ingested: {ingest_rps * args.batch:,.0f} ({share:.3f} of bare req/s)")


if __name__ == "__main__":
    main()
