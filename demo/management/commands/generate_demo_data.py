"""Generate deterministic demo behaviour for a tenant (used by `make demo`, benchmarks and tests)."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Tenant
from demo.data import generate_demo_data


class Command(BaseCommand):
    help = "Generate N customers x D days of realistic signals for a tenant (idempotent per seed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--customers", type=int, default=2000)
        parser.add_argument("--days", type=int, default=120)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--end", help="ISO timestamp with offset the data ends at (default now)")

    def handle(self, *args: Any, **opts: Any) -> None:
        tenant = Tenant.objects.filter(slug=opts["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant {opts['tenant']!r}")
        end = datetime.fromisoformat(str(opts["end"])) if opts["end"] else None
        if end is not None and end.tzinfo is None:
            raise CommandError("--end needs a UTC offset")
        began = time.perf_counter()
        summary = generate_demo_data(
            tenant=tenant,
            customers=int(opts["customers"]),
            days=int(opts["days"]),
            seed=int(opts["seed"]),
            end=end,
        )
        out = {
            "tenant": tenant.slug,
            "customers": summary.customers,
            "signals_generated": summary.signals_generated,
            "signals_stored": summary.signals_stored,
            "contacts": summary.contacts,
            "start": summary.start.isoformat(),
            "end": summary.end.isoformat(),
            "seconds": round(time.perf_counter() - began, 1),
        }
        self.stdout.write(json.dumps(out))
