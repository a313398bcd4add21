from __future__ import annotations

from typing import Any

from celery import shared_task

from webhooks.services import deliveries_prune, deliveries_sweep, delivery_attempt


@shared_task(name="webhooks.deliver", ignore_result=True, acks_late=True)
def webhook_deliver_task(tenant_id: int, delivery_ids: list[str], **kwargs: Any) -> None:
    """Attempt each delivery once; a failed one comes back after its backoff as its own task."""
    for delivery_id in delivery_ids:
        outcome = delivery_attempt(tenant_id=tenant_id, delivery_id=delivery_id)
        # Eager mode (tests) would run the retry at once, before it is due: the sweeper covers it.
        if outcome.retry_in is not None and not webhook_deliver_task.request.is_eager:
            webhook_deliver_task.apply_async((tenant_id, [delivery_id]), countdown=outcome.retry_in)


@shared_task(name="webhooks.sweep", ignore_result=True, expires=120)
def webhooks_sweep_task(**kwargs: Any) -> int:
    deliveries_prune()
    return deliveries_sweep()
