"""`python manage.py run_pipeline --tenant SLUG [--as-of ISO] [--train]`: the pipeline, synchronously."""

from __future__ import annotations

import json
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Tenant
from pipeline.runs import run_pipeline
from proactive.models import PipelineRun


class Command(BaseCommand):
    help = "Run features -> (train) -> score -> playbooks -> due campaigns; print a JSON summary."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--as-of", help="ISO 8601 time with an offset (default: now)")
        parser.add_argument("--train", action="store_true", help="train a new model before scoring")

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
        run = run_pipeline(tenant=tenant, as_of=as_of, train=bool(opts["train"]))
        if run is None:  # a manual run has its own window, so this means a broken database state
            raise CommandError("the run could not be claimed")
        self.stdout.write(json.dumps(run.summary, default=str))
        if run.status != PipelineRun.Status.SUCCEEDED:
            raise CommandError(f"pipeline run {run.pk} failed: {run.error.strip().splitlines()[-1:]}")
