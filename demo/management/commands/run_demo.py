"""`make demo`: migrate, seed the demo tenant, then run web + Celery worker + beat until Ctrl-C."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Run the demo: migrate, seed a demo tenant, start web, worker and beat."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))
        parser.add_argument("--no-processes", action="store_true", help="Only migrate and seed.")

    def handle(self, *args: object, **opts: object) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        call_command("setup_periodic_tasks")
        logins = call_command("seed_demo", stdout=io.StringIO())  # printed once, below
        if opts["no_processes"]:
            return
        port = str(opts["port"])
        py = sys.executable
        env = dict(os.environ)
        procs = [
            subprocess.Popen(  # noqa: S603 (our own interpreter and manage.py)
                [py, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], env=env
            ),
            subprocess.Popen(  # noqa: S603 (our own interpreter)
                [
                    py,
                    "-m",
                    "celery",
                    "-A",
                    "proactive",
                    "worker",
                    "--loglevel=INFO",
                    "--concurrency=2",
                    "--pool=prefork",
                ],
                env=env,
            ),
            subprocess.Popen(  # noqa: S603 (our own interpreter and manage.py)
                [py, "-m", "celery", "-A", "proactive", "beat", "--loglevel=INFO"], env=env
            ),
        ]
        self.stdout.write(
            self.style.SUCCESS(f"\nProactive demo at http://127.0.0.1:{port}/\n{logins}\nCtrl-C stops it.\n")
        )
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
        try:
            while all(p.poll() is None for p in procs):
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
            for p in procs:
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
