from __future__ import annotations

import smtplib
from unittest import mock

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from campaigns.delivery import outreach_deliver, outreach_deliver_task, unsubscribe_token
from campaigns.models import Outreach, OutreachEvent
from tests.campaigns.inbox_fixtures import executable_parts, private_cache  # noqa: F401
from tests.factories import CustomerFactory, OutreachFactory


@pytest.fixture
def email_outreach(tenant):
    customer = CustomerFactory(tenant=tenant, name="Ada <b>Lovelace</b>", email="ada@customer.test")
    return OutreachFactory(
        tenant=tenant,
        customer=customer,
        channel="email",
        status="sent",
        sent_at=timezone.now(),
        title="Hi {{ customer.first_name }}",
        body="Your **sync** failed, {{ customer.name }}. <script>alert(1)</script>",
        cta_label="Fix it",
        cta_url="https://example.com/fix",
    )


def test_it_sends_once_even_when_called_again(tenant, email_outreach):
    outreach_deliver(tenant=tenant, outreach_ids=[email_outreach.pk])
    outreach_deliver(tenant=tenant, outreach_ids=[email_outreach.pk])
    outreach_deliver_task.apply(args=[tenant.pk, [str(email_outreach.pk)]])
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ada@customer.test"] and message.subject == "Hi Ada"
    html = message.alternatives[0][0]
    assert "<strong>sync</strong>" in html and "Ada &lt;b&gt;Lovelace&lt;/b&gt;" in html
    assert executable_parts(html.split("<body", 1)[1]) == []
    assert "https://example.com/fix" in message.body
    link = message.extra_headers["List-Unsubscribe"].strip("<>")
    assert link.endswith(f"/email/unsubscribe/{unsubscribe_token(email_outreach.customer)}/")
    assert link in message.body
    email_outreach.refresh_from_db()
    assert email_outreach.email_sent_at is not None
    assert OutreachEvent.objects.for_tenant(tenant).filter(kind="email_sent").count() == 1


def test_a_failed_send_is_retried_and_then_sent_once(tenant, email_outreach):
    with (
        mock.patch(
            "django.core.mail.EmailMultiAlternatives.send", side_effect=smtplib.SMTPServerDisconnected
        ),
        pytest.raises(smtplib.SMTPServerDisconnected),
    ):
        outreach_deliver(tenant=tenant, outreach_ids=[email_outreach.pk])
    email_outreach.refresh_from_db()
    assert email_outreach.email_sent_at is None  # the claim was given back
    outreach_deliver(tenant=tenant, outreach_ids=[email_outreach.pk])
    outreach_deliver(tenant=tenant, outreach_ids=[email_outreach.pk])
    assert len(mail.outbox) == 1


def test_pending_outreach_is_not_delivered(tenant, email_outreach):
    Outreach.objects.for_tenant(tenant).filter(pk=email_outreach.pk).update(status="pending_review")
    outreach_deliver(tenant=tenant, outreach_ids=[email_outreach.pk])
    assert mail.outbox == []


def test_unsubscribe_is_honoured(tenant, email_outreach):
    customer = email_outreach.customer
    url = f"/email/unsubscribe/{unsubscribe_token(customer)}/"
    client = Client(enforce_csrf_checks=True)
    page = client.get(url)
    assert page.status_code == 200 and b"Unsubscribe?" in page.content
    customer.refresh_from_db()
    assert customer.email_unsubscribed_at is None  # a GET (link scanner) changes nothing
    done = client.post(url, {"List-Unsubscribe": "One-Click"})  # RFC 8058 one-click, no CSRF token
    assert done.status_code == 200 and b"You are unsubscribed" in done.content
    customer.refresh_from_db()
    assert customer.email_unsubscribed_at is not None
    outreach_deliver(tenant=tenant, outreach_ids=[email_outreach.pk])
    assert mail.outbox == []
    assert OutreachEvent.objects.for_tenant(tenant).filter(kind="email_skipped").count() == 1


def test_a_tampered_unsubscribe_token_is_a_404(tenant, email_outreach):
    token = unsubscribe_token(email_outreach.customer)
    assert Client().post(f"/email/unsubscribe/{token[:-2]}xx/").status_code == 404
    email_outreach.customer.refresh_from_db()
    assert email_outreach.customer.email_unsubscribed_at is None


def _email_to(tenant, name, email):
    customer = CustomerFactory(tenant=tenant, name=name, email=email)
    return OutreachFactory(
        tenant=tenant,
        customer=customer,
        channel="email",
        status="sent",
        sent_at=timezone.now(),
        title="Hello {{ customer.name }}",
        body="Body",
    )


def test_a_cr_or_lf_in_a_name_used_in_the_subject_does_not_stop_the_batch(tenant):
    rows = [
        _email_to(tenant, name, f"c{i}@customer.test")
        for i, name in enumerate(["Ada", "Eve\rBcc: x@evil.test", "Bob\n\u2028Smith", "Zed"])
    ]
    outreach_deliver(tenant=tenant, outreach_ids=[o.pk for o in rows])
    assert len(mail.outbox) == 4
    subjects = sorted(m.subject for m in mail.outbox)
    assert "Hello Eve Bcc: x@evil.test" in subjects and "Hello Bob Smith" in subjects
    assert all("\r" not in s and "\n" not in s for s in subjects)
    assert (
        Outreach.objects.for_tenant(tenant).filter(pk__in=[o.pk for o in rows], email_sent_at=None).count()
        == 0
    )


def test_a_message_that_cannot_be_built_is_marked_and_the_rest_are_sent(tenant):
    from django.core.mail import BadHeaderError

    rows = [_email_to(tenant, "Ada", f"c{i}@customer.test") for i in range(3)]
    real = mail.EmailMultiAlternatives.send

    def send(self, *args, **kwargs):
        if self.to == ["c1@customer.test"]:
            raise BadHeaderError("Header values can't contain newlines")
        return real(self, *args, **kwargs)

    with mock.patch("django.core.mail.EmailMultiAlternatives.send", send):
        outreach_deliver(tenant=tenant, outreach_ids=[o.pk for o in rows])
    assert sorted(m.to[0] for m in mail.outbox) == ["c0@customer.test", "c2@customer.test"]
    bad = Outreach.objects.for_tenant(tenant).get(pk=rows[1].pk)
    assert bad.email_sent_at is None and bad.suppressed_reason == "email: failed (BadHeaderError)"
    assert OutreachEvent.objects.for_tenant(tenant).filter(outreach=bad, kind="email_failed").count() == 1
