"""`python manage.py monitor --tenant SLUG [--as-of ISO]`: the incident detector, synchronously."""

from __future__ import annotations

import json
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Tenant
from campaigns.monitoring import monitor_run


class Command(BaseCommand):
    help = "Look for spikes in the tenant's monitored signals; print {as_of, checked, suspected}."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--as-of", help="ISO 8601 time with an offset (default: now)")

    def handle(self, *args: object, **opts: object) -> None:
        tenant = Tenant.objects.filter(slug=opts["tenant"]).first()
        if tenant is None:
            raise CommandError(f"no tenant with slug {opts['tenant']!r}")
        as_of = None
        if opts["as_of"]:
            try:
                as_of = datetime.fromisoformat(str(opts["as_of"]))
            except ValueError:
                raise CommandError(f"--as-of {opts['as_of']!r} is not an ISO 8601 time") from None
            if as_of.tzinfo is None:
                raise CommandError("--as-of needs an offset, e.g. 2025-01-31T00:00:00+00:00")
        result = monitor_run(tenant=tenant, as_of=as_of)
        if result is None:  # a manual run has its own window, so this means a broken database state
            raise CommandError("the run could not be claimed")
        self.stdout.write(json.dumps(result))
