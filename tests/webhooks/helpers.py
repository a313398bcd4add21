from __future__ import annotations

import time

from django.test.utils import CaptureQueriesContext  # noqa: F401  (re-exported for tests)

from webhooks.models import WebhookDelivery
from webhooks.services import deliveries_sweep


def create_webhook(api, url: str, events: list[str]) -> dict:
    response = api.post("/api/v1/webhooks", {"url": url, "events": events}, content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()


def drive(capture, tenant, *, until, timeout: float = 15.0) -> None:
    """Run the beat's sweeper (which enqueues due deliveries; tasks run eagerly) until `until()`."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "deliveries did not finish in time"
        with capture(execute=True):
            deliveries_sweep()
        time.sleep(0.02)


def deliveries(tenant, **filters) -> list[WebhookDelivery]:
    return list(
        WebhookDelivery.objects.for_tenant(tenant).filter(**filters).order_by("created_at", "event_key")
    )
