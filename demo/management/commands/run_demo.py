"""`make demo`: migrate, seed the demo tenant, then run web + Celery worker + beat until Ctrl-C.

The processes log to `var/log/{web,worker,beat}.log`, so the banner with the URL and the demo
logins is the last thing on the terminal (and the logins are also written to
`var/demo-logins.txt`). Ctrl-C stops the three processes and, when the demo runs on the embedded
PostgreSQL, that server too.
"""

from __future__ import annotations

import io
import os
import time
import urllib.request

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from proactive import processes
from proactive.embedded_db import embedded_database_stop


def demo_commands(port: str) -> dict[str, list[str]]:
    return {
        "web": processes.python_command("manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"),
        **processes.celery_commands(concurrency=2),
    }


def wait_for_web(url: str, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own loopback URL)
                return response.status == 200
        except OSError:
            time.sleep(0.5)
    return False


class Command(BaseCommand):
    help = "Run the demo: migrate, seed a demo tenant, start web, worker and beat."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))
        parser.add_argument("--no-processes", action="store_true", help="Only migrate and seed.")

    def handle(self, *args: object, **opts: object) -> None:
        embedded = not os.environ.get("DATABASE_URL")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("setup_periodic_tasks")
        logins = call_command("seed_demo", stdout=io.StringIO())
        var = settings.BASE_DIR / "var"
        logins_file = var / "demo-logins.txt"
        logins_file.write_text(logins + "\n")
        logins_file.chmod(0o600)
        if opts["no_processes"]:
            self.stdout.write(logins)
            return
        port = str(opts["port"])
        env = processes.child_env()
        env["DEMO"] = "1"
        log_dir = var / "log"
        procs = processes.start(demo_commands(port), env=env, log_dir=log_dir)
        wait_for_web(f"http://127.0.0.1:{port}/healthz")
        self.stdout.write(
            self.style.SUCCESS(
                f"\nProactive demo at http://127.0.0.1:{port}/\n{logins}\n"
                f"(logins also in {logins_file}; logs in {log_dir}/web.log, worker.log, beat.log)\n"
                "Ctrl-C stops it" + (", and the embedded PostgreSQL with it.\n" if embedded else ".\n")
            )
        )
        self.stdout.flush()

        def stop_database() -> None:
            from django.db import connections

            connections.close_all()
            if embedded and embedded_database_stop(settings.BASE_DIR):
                self.stdout.write("Stopped the embedded PostgreSQL.")

        raise SystemExit(processes.supervise(procs, on_exit=stop_database))
