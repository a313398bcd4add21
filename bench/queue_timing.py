"""Server time of the review queue page with 10,000 pending items (in-process, no network).

DATABASE_URL=postgresql://postgres@127.0.0.1:5432/h4 .venv/bin/python bench/queue_timing.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proactive.test_settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from accounts.models import Membership, Tenant, User  # noqa: E402
from campaigns.models import Outreach, Playbook  # noqa: E402
from proactive.models import Customer  # noqa: E402


def seed() -> User:
    call_command("migrate", interactive=False, verbosity=0)
    tenant, _ = Tenant.objects.get_or_create(slug="bench-queue", defaults={"name": "Queue bench"})
    user, _ = User.objects.get_or_create(email="agent@bench-queue.test")
    Membership.objects.get_or_create(tenant=tenant, user=user, defaults={"role": "agent"})
    if not Outreach.objects.for_tenant(tenant).exists():
        customers = Customer.objects.bulk_create(
            [Customer(tenant=tenant, external_id=f"q{i}", name=f"Customer {i}") for i in range(1000)]
        )
        playbook = Playbook.objects.create(tenant=tenant, name="Bench", trigger={}, action={})
        now = timezone.now()
        Outreach.objects.bulk_create(
            [
                Outreach(
                    tenant=tenant,
                    customer=customers[i % 1000],
                    playbook=playbook,
                    dedupe_key=f"q:{i}",
                    status="pending_review",
                    priority=i % 4,
                    risk_score=(i % 97) / 97,
                    triggered_at=now,
                    title=f"Message {i}",
                )
                for i in range(10_000)
            ],
            batch_size=2000,
        )
        with connection.cursor() as cur:
            cur.execute("ANALYZE campaigns_outreach")
    return user


def main() -> None:
    client = Client()
    client.force_login(seed())
    for path in ("/t/bench-queue/queue/", "/t/bench-queue/queue/?page=150"):
        client.get(path)
        times = []
        for _ in range(20):
            started = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - started) * 1000)
        with CaptureQueriesContext(connection) as queries:
            client.get(path)
        print(
            f"{path:34} {response.status_code}  median {statistics.median(times):6.1f} ms"
            f"  min {min(times):6.1f} ms  queries {len(queries)}"
        )


if __name__ == "__main__":
    main()
