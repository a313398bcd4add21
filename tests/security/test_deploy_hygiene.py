"""Deploy hygiene: secrets from the environment only, security headers, CSRF on every
session route, ruff's security rules, and an audit trail nobody can edit from the app.

(`manage.py check --deploy` with production settings is tests/accounts/test_deploy.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.contrib import admin
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditLog, Membership
from campaigns import queue
from campaigns.models import Playbook
from tests.factories import CustomerFactory, MembershipFactory, OutreachFactory, PlaybookFactory, UserFactory
from tests.isolation_world import build_world
from tests.test_isolation import ROUTES, fill_kwargs, url_for

# Routes that take POSTs without a CSRF token, and why.
CSRF_EXEMPT = {
    # No cookies: the server key or the customer's JWT in a header authenticates, so a
    # cross-site form cannot ride on an ambient credential.
    "api:",
    # Segment's wire protocol: the write key in an Authorization header set by the sender's
    # library (no cookie, no session), as for the API.
    "segment:",
    # RFC 8058 one-click unsubscribe from the mail client; the signed token in the URL
    # is the authorisation and the only effect is opting that customer out.
    "campaigns:unsubscribe",
    # The OpenAPI document: GET only (DRF answers POST with 405), no state to change.
    "schema",
}


def _django(env_overrides: dict[str, str], code: str = "import django; django.setup()"):
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG", "HTTPS_ONLY")}
    env.update(DJANGO_SETTINGS_MODULE="proactive.settings", DATABASE_URL=django_settings.DATABASE_URL)
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        cwd=django_settings.BASE_DIR,
        check=False,
        timeout=60,
    )


def test_settings_refuse_to_start_without_a_secret_key_when_debug_is_off():
    result = _django({"DEBUG": "0"})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_settings_take_the_secret_key_from_the_environment():
    code = "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)"
    result = _django({"DEBUG": "0", "SECRET_KEY": "from-the-environment-0123456789"}, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "from-the-environment-0123456789"


def test_production_defaults_are_https_only():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SECURE_HSTS_SECONDS > 0)"
    )
    result = _django({"DEBUG": "0", "SECRET_KEY": "x" * 50}, code)
    assert result.stdout.split() == ["True"] * 4, result.stderr


@pytest.mark.parametrize("path", ["/login/", "/healthz", "/api/v1/tenant", "/admin/login/"])
def test_security_headers_on_pages_and_api(db, path):
    with override_settings(
        SECURE_HSTS_SECONDS=31536000, SECURE_HSTS_INCLUDE_SUBDOMAINS=True, SECURE_SSL_REDIRECT=True
    ):
        response = Client().get(path, secure=True)
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    if response["Content-Type"].startswith("text/html"):
        assert response["X-Frame-Options"] == "DENY"


def test_plain_http_is_redirected_to_https_when_https_only(db):
    with override_settings(SECURE_SSL_REDIRECT=True):
        response = Client().get("/login/")
    assert response.status_code == 301
    assert response["Location"].startswith("https://")


def test_session_cookies_are_http_only():
    assert django_settings.SESSION_COOKIE_HTTPONLY is True


# ---- CSRF ---------------------------------------------------------------------------------------


def _csrf_routes():
    return [
        (n, r)
        for n, r in ROUTES
        if not any(n == e or (e.endswith(":") and n.startswith(e)) for e in CSRF_EXEMPT)
    ]


def test_every_session_route_refuses_a_post_without_a_csrf_token(db):
    world = build_world()
    superuser = UserFactory(is_staff=True, is_superuser=True)
    admin_user = world.of(Membership).user  # tenant B's admin: the walk uses B's own objects
    failures = []
    for user in (admin_user, superuser):
        client = Client(enforce_csrf_checks=True)
        client.force_login(user)
        for name, route in _csrf_routes():
            url = url_for(name, route, fill_kwargs(name, route, world))
            response = client.post(url, data={"name": "x", "title": "x", "post": "yes"})
            if response.status_code != 403 or b"CSRF" not in response.content:
                failures.append(f"{user.email} POST {url} -> {response.status_code}")
    assert not failures, "\n".join(failures)


def test_the_csrf_walk_covers_pages_htmx_and_admin():
    names = {n for n, _ in _csrf_routes()}
    assert {"dashboard:item_send", "dashboard:bulk", "accounts:keys_rotate", "admin:index"} <= names
    assert len(names) > 100


# ---- ruff S --------------------------------------------------------------------------------------


def test_ruff_security_rules_are_clean():
    ruff = os.path.join(os.path.dirname(sys.executable), "ruff")
    result = subprocess.run(
        [ruff, "check", "--select", "S", "--output-format", "concise", "."],
        cwd=django_settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---- audit log ----------------------------------------------------------------------------------


def test_the_audit_log_cannot_be_edited_from_the_admin(db):
    model_admin = admin.site._registry[AuditLog]
    superuser = UserFactory(is_staff=True, is_superuser=True)
    request = type("R", (), {"user": superuser})()
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    world = build_world()
    row = AuditLog.objects.create(tenant=world.tenant_b, action="x", data={"a": 1})
    client = Client()
    client.force_login(superuser)
    client.post(reverse("admin:accounts_auditlog_change", args=[row.pk]), {"action": "edited"})
    client.post(reverse("admin:accounts_auditlog_delete", args=[row.pk]), {"post": "yes"})
    row.refresh_from_db()
    assert row.action == "x"


def test_agent_queue_actions_write_audit_rows(db, tenant):
    agent = MembershipFactory(tenant=tenant, role=Membership.Role.AGENT).user
    customer = CustomerFactory(tenant=tenant)
    items = [OutreachFactory(tenant=tenant, customer=customer, dedupe_key=f"a{i}") for i in range(6)]
    queue.outreach_claim(tenant=tenant, outreach_id=items[0].pk, user=agent)
    queue.outreach_edit(tenant=tenant, outreach_id=items[0].pk, user=agent, title="New", body="Body")
    queue.outreach_send(tenant=tenant, outreach_id=items[0].pk, user=agent)
    queue.outreach_reject(tenant=tenant, outreach_id=items[1].pk, user=agent, reason="no")
    queue.outreach_snooze(
        tenant=tenant, outreach_id=items[2].pk, user=agent, until=timezone.now() + timedelta(days=1)
    )
    queue.outreach_claim(tenant=tenant, outreach_id=items[3].pk, user=agent)
    queue.outreach_release(tenant=tenant, outreach_id=items[3].pk, user=agent)
    queue.outreach_bulk(
        tenant=tenant, outreach_ids=[items[4].pk, items[5].pk], user=agent, action="reject", reason="dup"
    )
    actions = set(AuditLog.objects.for_tenant(tenant).filter(actor=agent).values_list("action", flat=True))
    expected = {"claimed", "edited", "sent", "rejected", "snoozed", "released", "bulk_reject"}
    assert {f"outreach.{a}" for a in expected} <= actions, actions


def test_admin_changes_to_tenant_rows_write_audit_rows(db, tenant, admin_client_for):
    playbook = PlaybookFactory(tenant=tenant, name="Before")
    url = reverse("admin:campaigns_playbook_change", args=[playbook.pk])
    form = admin_client_for.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None}
    data.update(
        tenant=tenant.pk,
        name="After",
        trigger='{"metric": "days_since_signup", "op": "gte", "value": 3}',
        action='{"channel": "in_app", "title": "Hi"}',
    )
    response = admin_client_for.post(url, data)
    assert Playbook.objects.for_tenant(tenant).get(pk=playbook.pk).name == "After", response.content[:2000]
    admin_client_for.post(reverse("admin:campaigns_playbook_delete", args=[playbook.pk]), {"post": "yes"})
    rows = AuditLog.objects.for_tenant(tenant).filter(target_id=str(playbook.pk))
    assert {r.action for r in rows} == {"admin.playbook.change", "admin.playbook.delete"}
    assert all(r.actor_id == admin_client_for.user.pk for r in rows)
