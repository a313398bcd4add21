"""Hostile input never comes out executable, and bad JSON is refused cleanly.

Each of the >= 100 payloads in hostile_payloads.txt is put into a playbook's action
(title, body, CTA label), an outreach built from it, and a customer's name and
attributes (which message bodies interpolate). Then every place that shows them is
read back: the inbox JSON (`body_html` must be allow-listed HTML only), the agent's
queue list, item and preview pages, the tenant's playbook and customer pages, and the
Django admin change pages. A payload that survives as a script, handler, htmx attribute
or javascript: URL, or a Django template tag that got evaluated, fails the test.
"""

from __future__ import annotations

import json
import uuid

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from accounts.services import api_key_create
from campaigns.inbox import identity as inbox_identity
from campaigns.rendering import customer_variables, render_message, substitute_text
from tests.campaigns.inbox_fixtures import mint
from tests.factories import (
    CustomerFactory,
    MembershipFactory,
    OutreachFactory,
    PlaybookFactory,
    TenantFactory,
)
from tests.security.html_checks import PAYLOADS, fragment_problems, injected


def test_the_payload_list_is_large_and_varied():
    assert len(PAYLOADS) >= 100
    assert sum("XSS1337" in p for p in PAYLOADS) >= 90
    assert sum("{{" in p or "{%" in p for p in PAYLOADS) >= 12


def test_the_checker_catches_what_it_should():
    # The checks must be able to fail: raw payloads are caught.
    assert injected("<p><img src=x onerror=\"alert('XSS1337')\"></p>")
    assert injected("<script>alert('XSS1337')</script>")
    assert injected('<a href=" java\tscript:alert(1)">x</a>')
    assert injected('<div hx-get="/XSS1337" hx-trigger=load></div>')
    assert injected("Hello ZZCANARYZZ")
    assert not injected('<script type="application/json">{"x": "alert(\'XSS1337\')"}</script>')
    assert not injected("<p>&lt;script&gt;alert('XSS1337')&lt;/script&gt;</p>")
    assert fragment_problems("<p style='x'>hi</p>")
    assert not fragment_problems('<p><a href="https://ok.test" rel="noopener">ok</a> <em>x</em></p>')


@pytest.mark.parametrize("payload", PAYLOADS)
def test_rendering_never_emits_executable_html(payload):
    customer = {"name": payload, "email": "a@b.test", "external_id": payload, "attributes": {"plan": payload}}
    body = f"{payload}\n\nHi {{{{ customer.name }}}}, plan {{{{ customer.attributes.plan }}}} [go]({payload})"
    rendered = render_message(title=payload, body=body, customer=customer)
    assert not fragment_problems(rendered.body_html), rendered.body_html


@pytest.fixture
def private_cache(settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}
    }
    inbox_identity._tenant_memo.clear()
    yield
    inbox_identity._tenant_memo.clear()


@pytest.fixture
def hostile_world(db, private_cache):
    tenant = TenantFactory(slug="hostile", name="Hostile")
    now = timezone.now()
    rows = []
    for i, payload in enumerate(PAYLOADS):
        customer = CustomerFactory(
            tenant=tenant,
            external_id=f"c{i}",
            name=payload[:255],
            attributes={"plan": payload, payload[:60]: "x"},
        )
        action = {
            "channel": "in_app",
            "title": payload[:200],
            "body": f"{payload}\n\nHi {{{{ customer.name }}}} on {{{{ customer.attributes.plan }}}}",
            "cta_label": payload[:100],
            "cta_url": "https://example.com/guide",
            "requires_review": True,
            "priority": "normal",
        }
        playbook = PlaybookFactory(tenant=tenant, name=f"{i} {payload}"[:200], action=action)
        sent = OutreachFactory(
            tenant=tenant,
            customer=customer,
            playbook=playbook,
            status="sent",
            sent_at=now,
            title=action["title"],
            body=action["body"],
            cta_label=action["cta_label"],
            # Stored URLs are validated on the way in; the inbox must still refuse a bad one.
            cta_url=f"javascript:alert('XSS1337')//{i}" if i % 2 else "https://example.com/guide",
        )
        review = OutreachFactory(
            tenant=tenant,
            customer=customer,
            playbook=playbook,
            status="pending_review",
            title=action["title"],
            body=action["body"],
            cta_label=action["cta_label"],
        )
        rows.append((customer, playbook, sent, review))
    admin = MembershipFactory(tenant=tenant, role=Membership.Role.ADMIN, user__is_staff=True)
    agent = MembershipFactory(tenant=tenant, role=Membership.Role.AGENT)
    return {"tenant": tenant, "rows": rows, "admin": admin.user, "agent": agent.user}


def test_inbox_json_never_carries_executable_html(hostile_world):
    tenant = hostile_world["tenant"]
    client = Client()
    problems = []
    for customer, _playbook, _sent, _review in hostile_world["rows"]:
        token = mint(tenant.identity_secret, customer.external_id)
        response = client.get(
            "/api/v1/inbox",
            HTTP_X_PUBLISHABLE_KEY=tenant.publishable_key,
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        assert response.status_code == 200
        (message,) = response.json()["messages"]
        problems += [f"{customer.external_id}: {p}" for p in fragment_problems(message["body_html"])]
        if message["cta_url"] and not message["cta_url"].startswith(("https://", "http://")):
            problems.append(f"{customer.external_id}: cta_url {message['cta_url']!r}")
        # Titles are text for textContent: only the allow-listed variables are substituted.
        assert message["title"] == substitute_text(customer.name[:200], customer_variables(customer))
    assert not problems, "\n".join(problems)


def _pages(world: dict) -> list[tuple[Client, str, dict | None]]:
    slug = world["tenant"].slug
    agent, admin = Client(), Client()
    agent.force_login(world["agent"])
    admin.force_login(world["admin"])
    pages = [
        (agent, reverse("dashboard:queue", kwargs={"tenant_slug": slug})),
        (agent, reverse("dashboard:queue", kwargs={"tenant_slug": slug}) + "?page=2"),
        (admin, reverse("dashboard:playbook_list", kwargs={"tenant_slug": slug})),
        (admin, reverse("dashboard:customers", kwargs={"tenant_slug": slug})),
        (admin, reverse("admin:campaigns_playbook_changelist")),
        (admin, reverse("admin:campaigns_outreach_changelist")),
        (admin, reverse("admin:proactive_customer_changelist")),
    ]
    pages = [(client, url, None) for client, url in pages]
    for customer, playbook, sent, review in world["rows"]:
        item = {"tenant_slug": slug, "outreach_id": review.pk}
        # The agent's live preview of an edit (POST, renders without saving).
        preview = reverse("dashboard:item_preview", kwargs=item)
        pages.append((agent, preview, {"title": customer.name, "body": review.body + customer.name}))
        pages += [
            (agent, reverse("dashboard:item", kwargs=item), None),
            (
                admin,
                reverse(
                    "dashboard:playbook_detail", kwargs={"tenant_slug": slug, "playbook_id": playbook.pk}
                ),
                None,
            ),
            (
                admin,
                reverse(
                    "dashboard:customer", kwargs={"tenant_slug": slug, "external_id": customer.external_id}
                ),
                None,
            ),
            (admin, reverse("admin:campaigns_playbook_change", args=[playbook.pk]), None),
            (admin, reverse("admin:campaigns_outreach_change", args=[sent.pk]), None),
            (admin, reverse("admin:proactive_customer_change", args=[customer.pk]), None),
        ]
    return pages


def test_agent_tenant_and_admin_pages_never_carry_executable_payloads(hostile_world):
    problems, seen = [], 0
    for client, url, data in _pages(hostile_world):
        response = client.post(url, data) if data else client.get(url)
        assert response.status_code == 200, url
        seen += 1
        problems += [f"{url}: {p}" for p in injected(response.content.decode())]
    assert seen >= 7 * len(PAYLOADS)
    assert not problems, "\n".join(problems[:30])


# ---- malformed, oversize and deeply nested JSON ------------------------------------------------

JSON_ROUTES = [
    ("post", "/api/v1/signals/batch"),
    ("post", "/api/v1/customers/batch"),
    ("post", "/api/v1/playbooks"),
    ("post", "/api/v1/campaigns"),
    ("post", "/api/v1/incidents"),
    ("patch", "/api/v1/tenant"),
]
NESTED_ARRAY = "[" * 100_000 + "]" * 100_000
NESTED_OBJECT = '{"signals": ' + '{"a": ' * 200 + "1" + "}" * 200 + "}"


@pytest.fixture
def api_client(db):
    tenant = TenantFactory(slug="jsonbad")
    return Client(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=tenant).secret}")


@pytest.mark.parametrize(("method", "url"), JSON_ROUTES)
@pytest.mark.parametrize(
    "body",
    [NESTED_ARRAY, NESTED_OBJECT, "{", '{"a": NaN}', "\xff\xfe", '"just a string"'],
    ids=["nested-array", "nested-object", "truncated", "nan", "not-utf8", "scalar"],
)
def test_bad_json_is_a_clean_400(api_client, method, url, body):
    response = getattr(api_client, method)(url, data=body, content_type="application/json")
    assert response.status_code == 400, response.content[:200]
    assert "detail" in response.json() or response.json()


def test_nul_characters_are_refused_not_a_500(api_client):
    ok = {"metric": "days_since_signup", "op": "gte", "value": 1}
    action = {"channel": "in_app", "title": "hi\u0000there"}
    response = api_client.post(
        "/api/v1/playbooks",
        data=json.dumps({"name": "nul", "trigger": ok, "action": action}),
        content_type="application/json",
    )
    assert response.status_code == 400
    signals = [
        {"id": "a\u0000", "customer": "c", "name": "x", "timestamp": "2024-01-01T00:00:00Z"},
        {
            "id": "b",
            "customer": "c",
            "name": "x",
            "timestamp": "2024-01-01T00:00:00Z",
            "properties": {"k": "\u0000"},
        },
        {"id": "c", "customer": "c", "name": "x", "timestamp": "2024-01-01T00:00:00Z"},
    ]
    response = api_client.post(
        "/api/v1/signals/batch", data=json.dumps({"signals": signals}), content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json()["accepted"] == 1
    assert [e["index"] for e in response.json()["errors"]] == [0, 1]
    customers = [
        {"external_id": "x\u0000"},
        {"external_id": "ok", "attributes": {"\u0000": 1}},
        {"external_id": "y"},
    ]
    response = api_client.post(
        "/api/v1/customers/batch", data=json.dumps({"customers": customers}), content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json()["created"] == 1


def test_oversize_bodies_are_a_413(api_client):
    big = json.dumps({"signals": [{"id": "x" * 100, "pad": "y" * 1000}] * 10_000})
    assert len(big) > 10 * 1024 * 1024
    for url in ("/api/v1/signals/batch", "/api/v1/customers/batch"):
        response = api_client.post(url, data=big, content_type="application/json")
        assert response.status_code == 413, url
    too_many = json.dumps({"signals": [{}] * 10_001})
    assert (
        api_client.post("/api/v1/signals/batch", data=too_many, content_type="application/json").status_code
        == 413
    )
    # Other JSON endpoints: Django's DATA_UPLOAD_MAX_MEMORY_SIZE turns a huge body into a 4xx.
    response = api_client.post("/api/v1/playbooks", data=big, content_type="application/json")
    assert 400 <= response.status_code < 500


def test_inbox_events_refuse_nested_json_cleanly(hostile_world):
    tenant = hostile_world["tenant"]
    customer, _playbook, sent, _review = hostile_world["rows"][0]
    token = mint(tenant.identity_secret, customer.external_id)
    response = Client().post(
        f"/api/v1/inbox/{sent.pk}/events",
        data=NESTED_ARRAY,
        content_type="application/json",
        HTTP_X_PUBLISHABLE_KEY=tenant.publishable_key,
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )
    assert response.status_code == 400
