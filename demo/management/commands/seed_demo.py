"""Create (or refresh) the demo tenant: logins, signals, playbooks, a campaign and pipeline history."""

from __future__ import annotations

import os

from django.core.management.base import BaseCommand

from demo.seed import demo_logins, demo_seed


class Command(BaseCommand):
    help = "Seed the demo tenant (idempotent)."

    def handle(self, *args: object, **opts: object) -> str:
        demo_seed(customers=int(os.environ.get("DEMO_CUSTOMERS", "2000")), log=self.stderr.write)
        return demo_logins()
