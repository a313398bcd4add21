"""Delivering sent outreach: the in-app inbox is invalidated, email goes out exactly once.

`outreach_deliver` is idempotent and safe to call again for the same ids (a retried task,
a second on_commit hook): an email is claimed by a conditional update on
`email_sent_at` before it is handed to the mail backend, and the claim is given back
only when the backend raised, so a retry sends it then and never twice.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Iterable
from typing import Any
from urllib.parse import urljoin

from celery import shared_task
from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.models import Tenant
from campaigns.inbox.store import inbox_bump
from campaigns.models import Outreach, OutreachEvent
from campaigns.rendering import render_message
from campaigns.webhook_events import outreach_events_emit
from proactive.models import Customer

log = logging.getLogger(__name__)

UNSUBSCRIBE_SALT = "campaigns.unsubscribe"


def unsubscribe_token(customer: Customer) -> str:
    """A signed, non-expiring token naming one customer of one tenant: the same in every message
    (no timestamp, unlike signing.dumps), so a link is stable and comparable."""
    return signing.Signer(salt=UNSUBSCRIBE_SALT).sign_object(
        {"t": customer.tenant_id, "c": customer.pk}, compress=True
    )


def unsubscribe_url(customer: Customer) -> str:
    path = reverse("campaigns:unsubscribe", kwargs={"token": unsubscribe_token(customer)})
    return urljoin(settings.PUBLIC_BASE_URL, path)


def customer_for_unsubscribe_token(token: str) -> Customer | None:
    try:
        data = signing.Signer(salt=UNSUBSCRIBE_SALT).unsign_object(token)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("c") is None:
        return None
    return Customer.objects.for_tenant(data.get("t")).select_related("tenant").filter(pk=data["c"]).first()


def customer_unsubscribe(*, customer: Customer) -> bool:
    """Stop email to this customer. True when it changed (the first time)."""
    return bool(
        Customer.objects.for_tenant(customer.tenant_id)
        .filter(pk=customer.pk, email_unsubscribed_at=None)
        .update(email_unsubscribed_at=timezone.now())
    )


def _email_message(outreach: Outreach) -> EmailMultiAlternatives:
    customer = outreach.customer
    rendered = render_message(title=outreach.title, body=outreach.body, customer=customer)
    link = unsubscribe_url(customer)
    context = {
        "tenant_name": outreach.tenant.name,
        "title": rendered.title,
        "body_html": rendered.body_html,
        "body_text": rendered.body_text,
        "cta_label": outreach.cta_label,
        "cta_url": outreach.cta_url if outreach.cta_url.startswith(("https://", "http://")) else "",
        "unsubscribe_url": link,
    }
    message = EmailMultiAlternatives(
        # A header: every run of whitespace or control characters (CR, LF, ...) becomes one space.
        subject=header_text(rendered.title)[:200],
        body=render_to_string("campaigns/email/message.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[customer.email],
        headers={
            "List-Unsubscribe": f"<{link}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "X-Proactive-Outreach": str(outreach.pk),
        },
    )
    message.attach_alternative(render_to_string("campaigns/email/message.html", context), "text/html")
    return message


def header_text(value: str) -> str:
    """Text safe for a mail header: no CR/LF or other control characters (BadHeaderError)."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in value).split())


def _mark_email_failed(tenant: Tenant, outreach: Outreach, exc: Exception) -> None:
    """A message that can never be sent (not a transient error): recorded on the row, not retried."""
    reason = f"email: failed ({type(exc).__name__})"
    if (
        Outreach.objects.for_tenant(tenant)
        .filter(pk=outreach.pk, email_sent_at=None, suppressed_reason="")
        .update(suppressed_reason=reason[:200])
    ):
        OutreachEvent.objects.create(
            tenant=tenant, outreach=outreach, kind="email_failed", data={"error": str(exc)[:500]}
        )


def _send_email(tenant: Tenant, outreach: Outreach) -> str:
    """Send one email outreach unless already sent; returns what happened."""
    customer = outreach.customer
    scoped = Outreach.objects.for_tenant(tenant)
    if not customer.email or customer.email_unsubscribed_at is not None:
        reason = "no_email" if not customer.email else "unsubscribed"
        claimed = scoped.filter(pk=outreach.pk, email_sent_at=None, suppressed_reason="").update(
            suppressed_reason=f"email: {reason}"
        )
        if claimed:
            OutreachEvent.objects.create(
                tenant=tenant, outreach=outreach, kind="email_skipped", data={"reason": reason}
            )
        return "skipped"
    stamp = timezone.now()
    if not scoped.filter(pk=outreach.pk, email_sent_at=None).update(email_sent_at=stamp):
        return "already_sent"
    try:
        _email_message(outreach).send(fail_silently=False)
    except BaseException:
        scoped.filter(pk=outreach.pk, email_sent_at=stamp).update(email_sent_at=None)
        raise
    OutreachEvent.objects.create(tenant=tenant, outreach=outreach, kind="email_sent", created_at=stamp)
    return "sent"


def outreach_deliver(*, tenant: Tenant, outreach_ids: list) -> None:
    """Deliver sent outreach: bump the inboxes of in-app recipients, send email once each.

    Call it after the outreach is committed as `sent` (e.g. from `transaction.on_commit`).
    Rows that are not `sent` are ignored. Raises the mail backend's error after giving
    the failed email's claim back, so a retry can send it.
    """
    rows = list(
        Outreach.objects.for_tenant(tenant)
        .filter(pk__in=list(outreach_ids), status=Outreach.Status.SENT)
        .select_related("customer", "tenant")
    )
    inbox_bump(
        tenant_id=tenant.pk,
        external_ids=[o.customer.external_id for o in rows if o.channel == Outreach.Channel.IN_APP],
    )
    failed: BaseException | None = None
    for outreach in rows:
        if outreach.channel != Outreach.Channel.EMAIL:
            continue
        # No atomic block: the claim on email_sent_at must be committed before the send.
        try:
            _send_email(tenant, outreach)
        except (smtplib.SMTPException, OSError) as exc:
            log.warning("email for outreach %s failed: %s", outreach.pk, exc)
            failed = exc
        except (ValueError, UnicodeError) as exc:  # BadHeaderError and the like: this row only
            log.warning("email for outreach %s cannot be built: %s", outreach.pk, exc)
            _mark_email_failed(tenant, outreach, exc)
    if failed is not None:
        raise failed


def outreach_deliver_on_commit(*, tenant: Tenant, outreach_ids: Iterable[Any]) -> None:
    """Schedule delivery once the current transaction commits (in-app at once, email via Celery);
    call it inside the transaction that made the rows `sent` (their webhook events join it)."""
    ids = [str(i) for i in outreach_ids]
    if not ids:
        return
    tenant_id = tenant.pk
    outreach_events_emit(tenant_id=tenant_id, event_type="outreach.sent", outreach_ids=ids)
    transaction.on_commit(lambda: outreach_deliver_task.delay(tenant_id, ids))


@shared_task(
    name="campaigns.outreach_deliver",
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=30,
    retry_backoff_max=3600,
    max_retries=8,
    ignore_result=True,
)
def outreach_deliver_task(tenant_id: int, outreach_ids: list[str], **kwargs: Any) -> None:
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is not None:
        outreach_deliver(tenant=tenant, outreach_ids=outreach_ids)
