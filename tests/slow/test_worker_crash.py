"""A real Celery worker (Redis broker, the test's live database) SIGKILLed mid-run.

The worker is killed (the whole process group, no warm shutdown) while a scoring run's
chunk tasks are executing. After a restart the unacknowledged messages come back
(`acks_late`, `reject_on_worker_lost`, visibility timeout), the run completes, every
customer is scored, each chunk is counted once, and the playbook step created exactly
one outreach per customer. Then two beat-style dispatchers fire for the same window
before any worker runs: both publish, and the window still runs once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from accounts.models import Tenant
from campaigns.models import Outreach
from proactive.models import PipelineRun, RiskScore
from tests.campaigns.helpers import make_customers
from tests.factories import PlaybookFactory, TenantFactory

pytestmark = pytest.mark.slow

BROKER = "redis://127.0.0.1:6379/9"
ROOT = Path(settings.BASE_DIR)
CUSTOMERS = 2000
CHUNK = 50


def _env() -> dict[str, str]:
    db = settings.DATABASES["default"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "REDIS_URL"))}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.slow.crash_settings",
        DATABASE_URL=f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        CELERY_BROKER_URL=BROKER,
        CELERY_TASK_ALWAYS_EAGER="0",
        SECRET_KEY="crash-test-secret-key",
        DEBUG="0",
        HTTPS_ONLY="0",
        PYTHONPATH=str(ROOT),
    )
    return env


def start_worker(concurrency: int = 1) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "proactive", "worker", "-l", "warning", "-c", str(concurrency),
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"h6crash{time.time_ns()}@%h"],
        cwd=ROOT, env=_env(), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def kill(worker: subprocess.Popen) -> None:
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)


def publish(code: str) -> str:
    """Run `code` in a Django process whose Celery app talks to the test broker."""
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def broker():
    client = redis.Redis.from_url(BROKER)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def crash_tenant(transactional_db, broker):
    tenant = TenantFactory(slug="crash", budget_max_messages=100)
    make_customers(tenant, CUSTOMERS, signed_up_days_ago=5)
    PlaybookFactory(
        tenant=tenant,
        trigger={"metric": "days_since_signup", "op": "gte", "value": 0},
        action={"channel": "in_app", "title": "Hi", "requires_review": False},
        holdout_percent=10,
    )
    return tenant


def _run(tenant: Tenant) -> PipelineRun | None:
    return PipelineRun.objects.for_tenant(tenant).first()


def test_a_killed_worker_loses_nothing_and_duplicates_nothing(crash_tenant):
    tenant = crash_tenant
    as_of = timezone.now()
    publish(
        "from pipeline.tasks import pipeline_run_task\n"
        f"pipeline_run_task.apply_async(kwargs={{'tenant_id': {tenant.pk}, 'kind': 'score', "
        f"'window_key': 'crash-test', 'as_of': '{as_of.isoformat()}', 'chunk_size': {CHUNK}}})"
    )
    began = time.monotonic()
    worker = start_worker()
    try:

        def midway() -> bool:
            run = _run(tenant)
            done = len((run.progress or {}).get("done", [])) if run else 0
            return 3 <= done < CUSTOMERS // CHUNK

        wait_for(midway, 90, "the run to be part-way through its chunks")
    finally:
        kill(worker)
    killed_at = _run(tenant)
    done = len(killed_at.progress.get("done", []))
    print(f"killed at {time.monotonic() - began:.1f}s with {done} chunks done")
    assert killed_at.status == PipelineRun.Status.RUNNING
    assert len(killed_at.progress["done"]) < killed_at.progress["chunks"]

    worker = start_worker()
    try:
        # 90 s once ran out in a fresh-clone CI run on a machine busy with other work (it finished in
        # 17-20 s in every rerun): a generous bound, since a hang would still fail.
        wait_for(lambda: _run(tenant).status != PipelineRun.Status.RUNNING, 240, "the run to finish")
    finally:
        kill(worker)
    run = _run(tenant)
    print(f"finished at {time.monotonic() - began:.1f}s")
    assert run.status == PipelineRun.Status.SUCCEEDED, run.error
    assert sorted(run.progress["done"]) == list(range(run.progress["chunks"]))  # each chunk counted once
    assert RiskScore.objects.for_tenant(tenant).count() == CUSTOMERS
    outreach = Outreach.objects.for_tenant(tenant)
    assert outreach.count() == CUSTOMERS
    assert outreach.values("customer_id").distinct().count() == CUSTOMERS
    assert PipelineRun.objects.for_tenant(tenant).count() == 1


def test_two_dispatchers_for_one_window_run_it_once(crash_tenant):
    tenant = crash_tenant
    Tenant.objects.exclude(pk=tenant.pk).delete()
    out = publish(
        "from django.utils import timezone\n"
        "from proactive.models import PipelineRun\n"
        "from pipeline.tasks import _schedule\n"
        "now = timezone.now()\n"
        "print(_schedule(PipelineRun.Kind.SCORE, now) + _schedule(PipelineRun.Kind.SCORE, now))"
    )
    assert int(out.strip()) == 2  # both dispatchers published: nothing was claimed yet
    worker = start_worker(concurrency=2)
    try:
        wait_for(
            lambda: (r := _run(tenant)) is not None and r.status != PipelineRun.Status.RUNNING,
            180,
            "the scheduled run to finish",
        )
        time.sleep(2)  # let the second message be consumed (and skipped)
        wait_for(lambda: broker_empty(), 30, "the queue to drain")
    finally:
        kill(worker)
    runs = PipelineRun.objects.for_tenant(tenant)
    assert runs.count() == 1
    assert runs.get().status == PipelineRun.Status.SUCCEEDED, runs.get().error
    assert Outreach.objects.for_tenant(tenant).count() == CUSTOMERS


def broker_empty() -> bool:
    client = redis.Redis.from_url(BROKER)
    return client.llen("celery") == 0 and client.hlen("unacked") == 0
