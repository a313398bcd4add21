"""`python manage.py monitor --tenant SLUG [--as-of ISO]`: the incident detector, synchronously."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.command_args import add_tenant_as_of, tenant_as_of
from campaigns.monitoring import monitor_run


class Command(BaseCommand):
    help = "Look for spikes in the tenant's monitored signals; print {as_of, checked, suspected}."

    def add_arguments(self, parser: CommandParser) -> None:
        add_tenant_as_of(parser)

    def handle(self, *args: object, **opts: object) -> None:
        tenant, as_of = tenant_as_of(opts)
        result = monitor_run(tenant=tenant, as_of=as_of)
        if result is None:  # a manual run has its own window, so this means a broken database state
            raise CommandError("the run could not be claimed")
        self.stdout.write(json.dumps(result))
