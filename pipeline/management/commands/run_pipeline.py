"""`python manage.py run_pipeline --tenant SLUG [--as-of ISO] [--train]`: the pipeline, synchronously."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.command_args import add_tenant_as_of, tenant_as_of
from pipeline.runs import run_pipeline
from proactive.models import PipelineRun


class Command(BaseCommand):
    help = "Run features -> (train) -> score -> playbooks -> due campaigns; print a JSON summary."

    def add_arguments(self, parser: CommandParser) -> None:
        add_tenant_as_of(parser)
        parser.add_argument("--train", action="store_true", help="train a new model before scoring")

    def handle(self, *args: object, **opts: object) -> None:
        tenant, as_of = tenant_as_of(opts)
        run = run_pipeline(tenant=tenant, as_of=as_of, train=bool(opts["train"]))
        if run is None:  # a manual run has its own window, so this means a broken database state
            raise CommandError("the run could not be claimed")
        self.stdout.write(json.dumps(run.summary, default=str))
        if run.status != PipelineRun.Status.SUCCEEDED:
            raise CommandError(f"pipeline run {run.pk} failed: {run.error.strip().splitlines()[-1:]}")
