"""A real Celery worker (Redis broker, the test's live database) SIGKILLed while a webhook
request is in flight.

The receiver answers slowly and fails the first requests. The worker is killed (whole process
group) right after the receiver got a request and before it answered. After a restart the
unacknowledged task comes back (`acks_late`, visibility timeout), the dead worker's claim
expires (lease), and every delivery ends delivered: nothing is lost, and the request the
receiver got twice carried one `webhook-id` both times, with a signature that verifies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
import redis
from django.conf import settings
from standardwebhooks import Webhook

from tests.campaigns.helpers import make_customers
from tests.factories import PlaybookFactory, TenantFactory
from tests.webhooks.receiver import Receiver
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.signing import new_secret

pytestmark = pytest.mark.slow

BROKER = os.environ.get("CRASH_BROKER_URL", "redis://127.0.0.1:6379/9")
ROOT = Path(settings.BASE_DIR)
CUSTOMERS = 12


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
        WEBHOOKS_ALLOW_PRIVATE="1",
        WEBHOOKS_TIMEOUT_SECONDS="2",
        WEBHOOKS_LEASE_SECONDS="3",
        WEBHOOKS_RETRY_BASE_SECONDS="0.5",
        WEBHOOKS_SWEEP_GRACE_SECONDS="2",
    )
    return env


def start_worker() -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "proactive", "worker", "-l", "warning", "-c", "2",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"whcrash{time.time_ns()}@%h"],
        cwd=ROOT, env=_env(), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def kill(worker: subprocess.Popen) -> None:
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)


def publish(code: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture
def broker():
    client = redis.Redis.from_url(BROKER)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def slow_receiver():
    server = Receiver(fail_first=2, delay=0.4).start()
    yield server
    server.stop()


def test_a_worker_killed_mid_delivery_loses_nothing_and_resends_with_the_same_id(
    transactional_db, broker, slow_receiver
):
    tenant = TenantFactory(slug="whcrash", budget_max_messages=100)
    make_customers(tenant, CUSTOMERS, signed_up_days_ago=5)
    PlaybookFactory(
        tenant=tenant,
        trigger={"metric": "days_since_signup", "op": "gte", "value": 0},
        action={"channel": "in_app", "title": "Hi", "requires_review": False},
        holdout_percent=0,
    )
    secret = new_secret()
    WebhookEndpoint.objects.create(
        tenant=tenant, url=slow_receiver.url, events=["outreach.sent"], secret=secret
    )
    # The firing runs in a process whose Celery app talks to the test broker: the delivery
    # rows commit with the outreach, and the delivery task is published after the commit.
    publish(
        "from accounts.models import Tenant\n"
        "from campaigns.firing import playbooks_evaluate\n"
        "from django.utils import timezone\n"
        f"playbooks_evaluate(tenant=Tenant.objects.get(pk={tenant.pk}), as_of=timezone.now())"
    )

    def owed():
        return WebhookDelivery.objects.for_tenant(tenant).order_by("created_at")

    assert owed().count() == CUSTOMERS
    began = time.monotonic()
    worker = start_worker()
    try:
        wait_for(lambda: len(slow_receiver.requests) >= 5, 60, "the worker to be delivering")
    finally:
        kill(worker)  # the 5th request is in flight: the receiver got it and has not answered
    print(f"killed at {time.monotonic() - began:.1f} s")
    in_flight = slow_receiver.requests[4].headers["webhook-id"]
    killed_at = {d.webhook_id: d.status for d in owed()}
    assert killed_at[in_flight] == WebhookDelivery.Status.DELIVERING
    assert list(killed_at.values()).count(WebhookDelivery.Status.SUCCEEDED) < CUSTOMERS

    worker = start_worker()
    try:
        wait_for(lambda: owed().filter(status=WebhookDelivery.Status.SUCCEEDED).count() == CUSTOMERS, 120,
                 "every delivery to succeed")  # fmt: skip
    finally:
        kill(worker)

    print(f"all delivered at {time.monotonic() - began:.1f} s")
    by_id = defaultdict(list)
    for request in slow_receiver.requests:
        headers = {k.lower(): v for k, v in request.headers.items()}
        Webhook(secret).verify(request.body, headers)  # raises on a bad signature
        by_id[headers["webhook-id"]].append(request.body)
    delivered_ids = {d.webhook_id for d in owed()}
    assert set(by_id) == delivered_ids  # nothing lost, nothing foreign
    assert len(by_id[in_flight]) >= 2  # the interrupted request was sent again, with the same id
    for bodies in by_id.values():
        assert len(set(bodies)) == 1  # a resend is the same message
    for delivery in owed():
        attempts = list(WebhookAttempt.objects.for_tenant(tenant).filter(delivery=delivery))
        assert [a.number for a in attempts] == list(range(1, delivery.attempts + 1))
        assert sum(1 for a in attempts if a.succeeded) == 1 and attempts[-1].succeeded
    interrupted = WebhookAttempt.objects.for_tenant(tenant).filter(
        delivery__in=owed().filter(pk__in=[d.pk for d in owed() if d.webhook_id == in_flight])
    )
    assert interrupted.first().error.startswith("interrupted")
    retried = [d for d in owed() if d.attempts > 1]
    assert len(retried) >= 3  # the two 500s and the interrupted one
    print(f"{len(slow_receiver.requests)} requests for {CUSTOMERS} deliveries")
