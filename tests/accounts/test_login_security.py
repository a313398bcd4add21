"""Login throttling on both login pages, and the password-reset flow over the email backend."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from accounts.models import User


@pytest.fixture
def user(db):
    return User.objects.create_user(email="ops@acme.test", password="the-right-password-1")


@pytest.mark.parametrize(
    ("url", "extra"),
    [("/login/", {}), ("/admin/login/", {"next": "/admin/"})],
)
def test_after_the_failure_limit_even_the_right_one_is_refused(user, url, extra, settings):
    User.objects.filter(pk=user.pk).update(is_staff=True)
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post(url, {"username": "ops@acme.test", "password": "wrong", **extra})
        assert response.status_code == 200  # the form again, with its error
    locked = client.post(url, {"username": "OPS@acme.test ", "password": "wrong", **extra})
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    right = client.post(url, {"username": "ops@acme.test", "password": "the-right-password-1", **extra})
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_success_before_the_limit_resets_the_count(user, settings):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post("/login/", {"username": "ops@acme.test", "password": "wrong"})
    assert (
        client.post("/login/", {"username": "ops@acme.test", "password": "the-right-password-1"}).status_code
        == 302
    )
    client.post("/logout/")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post("/login/", {"username": "ops@acme.test", "password": "wrong"})
    assert (
        client.post("/login/", {"username": "ops@acme.test", "password": "the-right-password-1"}).status_code
        == 302
    )


def test_another_account_from_the_same_address_is_not_locked(user):
    User.objects.create_user(email="other@acme.test", password="other-password-1")
    client = Client()
    for _ in range(10):
        client.post("/login/", {"username": "ops@acme.test", "password": "wrong"})
    assert (
        client.post("/login/", {"username": "other@acme.test", "password": "other-password-1"}).status_code
        == 302
    )


def test_the_login_page_links_the_password_reset():
    page = Client().get("/login/").content.decode()
    assert 'href="/password-reset/"' in page


def test_the_password_reset_flow_sets_a_new_password(user):
    client = Client()
    form = client.get("/password-reset/")
    assert form.status_code == 200 and "Reset your password" in form.content.decode()
    response = client.post("/password-reset/", {"email": "ops@acme.test"})
    assert response.status_code == 302 and response["Location"] == "/password-reset/sent/"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ops@acme.test"] and message.subject == "Reset your Proactive password"
    link = re.search(r"https?://[^/\s]+(/password-reset/[^/\s]+/[^/\s]+/)", message.body).group(1)
    confirm = client.get(link, follow=True)
    assert confirm.status_code == 200 and "Choose a new password" in confirm.content.decode()
    set_url = confirm.redirect_chain[-1][0]
    done = client.post(
        set_url, {"new_password1": "a-brand-new-pass-9", "new_password2": "a-brand-new-pass-9"}
    )
    assert done.status_code == 302 and done["Location"] == "/password-reset/done/"
    assert User.objects.get(pk=user.pk).check_password("a-brand-new-pass-9")
    # The link works once.
    again = client.get(link, follow=True)
    assert "This link no longer works" in again.content.decode()


def test_an_unknown_email_gets_the_same_answer_and_no_mail(db):
    response = Client().post("/password-reset/", {"email": "nobody@acme.test"})
    assert response.status_code == 302 and response["Location"] == "/password-reset/sent/"
    assert mail.outbox == []
