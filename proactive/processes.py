"""Run a set of long-lived processes (web, Celery worker, beat) and stop all of them together.

Used by `manage.py serve` (production) and `manage.py run_demo`: when one process dies, or on
Ctrl-C / SIGTERM, every other one is asked to stop (SIGTERM), then killed after a grace period,
so nothing is left running behind the command.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop


def python_command(*args: str) -> list[str]:
    """A command run by this interpreter (the project's venv), whatever PATH holds."""
    return [sys.executable, *args]


def celery_commands(*, concurrency: int) -> dict[str, list[str]]:
    """The Celery worker and beat that both `make demo` and `make serve` run beside the web process."""
    return {
        "worker": python_command(
            "-m", "celery", "-A", "proactive", "worker", "--loglevel=INFO", f"--concurrency={concurrency}"
        ),
        "beat": python_command("-m", "celery", "-A", "proactive", "beat", "--loglevel=INFO"),
    }


def start(
    commands: Mapping[str, list[str]], *, env: Mapping[str, str], log_dir: Path | None = None
) -> dict[str, subprocess.Popen]:
    """Start each command; with `log_dir`, its output goes to `<log_dir>/<name>.log`."""
    procs: dict[str, subprocess.Popen] = {}
    for name, argv in commands.items():
        out: IO | None = None
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            out = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 (kept open for the child's life)
        procs[name] = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            argv, env=dict(env), stdout=out, stderr=subprocess.STDOUT if out else None
        )
        if out is not None:
            out.close()  # the child holds its own descriptor
    return procs


def stop(procs: Mapping[str, subprocess.Popen], *, grace_seconds: float = 20.0) -> None:
    """SIGTERM every running process, wait up to `grace_seconds`, then SIGKILL what is left."""
    for p in procs.values():
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    for p in procs.values():
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def supervise(
    procs: Mapping[str, subprocess.Popen],
    *,
    on_exit: Callable[[], None] | None = None,
    grace_seconds: float = 20.0,
) -> int:
    """Wait until Ctrl-C, SIGTERM or the death of any process; then stop them all and run
    `on_exit`. Returns 0 on a requested stop, 1 when a process died on its own."""
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    died = None
    try:
        while died is None:
            died = next((name for name, p in procs.items() if p.poll() is not None), None)
            if died is None:
                time.sleep(0.5)
    except _Stop:
        pass
    finally:
        # A second Ctrl-C while stopping must not leave children behind.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        try:
            stop(procs, grace_seconds=grace_seconds)
            if on_exit is not None:
                on_exit()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if died is not None:
        print(f"{died} exited with {procs[died].returncode}; stopped the others.", file=sys.stderr)
        return 1
    return 0


def child_env() -> dict[str, str]:
    """The environment for the children: this one, unbuffered so logs show up at once."""
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
