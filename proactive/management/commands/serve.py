"""`make serve`: the production entry. Deploy steps, then gunicorn + Celery worker + beat until stopped.

Steps, in order (the README's production section lists the same):
`migrate`, `collectstatic`, `setup_periodic_tasks`, then `gunicorn proactive.wsgi:application`,
`celery -A proactive worker` and `celery -A proactive beat`. It refuses to run with DEBUG on or
without DATABASE_URL and CELERY_BROKER_URL in the environment: the embedded database and the
file-system broker are for the demo and tests only.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from proactive import processes


def production_commands(*, bind: str, web_workers: int, worker_concurrency: int) -> dict[str, list[str]]:
    return {
        "web": processes.python_command(
            "-m",
            "gunicorn",
            "proactive.wsgi:application",
            "--bind",
            bind,
            "--workers",
            str(web_workers),
            "--access-logfile",
            "-",
            "--forwarded-allow-ips",
            os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        ),
        **processes.celery_commands(concurrency=worker_concurrency),
    }


class Command(BaseCommand):
    help = "Production: migrate, collectstatic, setup_periodic_tasks, then run gunicorn, worker and beat."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default=os.environ.get("BIND", "127.0.0.1:8000"))
        parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2")))
        parser.add_argument(
            "--worker-concurrency", type=int, default=int(os.environ.get("CELERY_CONCURRENCY", "2"))
        )

    def handle(self, *args: object, **opts: object) -> None:
        missing = [
            name for name in ("DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY") if not os.environ.get(name)
        ]
        if settings.DEBUG:
            raise CommandError(
                "serve is the production entry: set DEBUG=0 (use `make demo` for a local demo)"
            )
        if missing:
            raise CommandError(f"serve needs {', '.join(missing)} in the environment (see the README)")
        call_command("migrate", interactive=False)
        call_command("collectstatic", interactive=False, verbosity=1)
        call_command("setup_periodic_tasks")
        procs = processes.start(
            production_commands(
                bind=str(opts["bind"]),
                web_workers=int(str(opts["web_workers"])),
                worker_concurrency=int(str(opts["worker_concurrency"])),
            ),
            env=processes.child_env(),
        )
        self.stdout.write(
            f"Proactive on {opts['bind']} (web, worker, beat); Ctrl-C or SIGTERM stops all three."
        )
        self.stdout.flush()
        raise SystemExit(processes.supervise(procs))
