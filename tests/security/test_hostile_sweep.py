"""Every route (walked from the URL resolver, so new routes are covered) x every class of hostile
input from the audit, as a tenant admin (session) and as the tenant's server key: no 5xx.

Classes: NUL and lone surrogates in query strings and JSON, out-of-range timestamps and numbers,
deep nesting, oversized bodies, malformed cursors, CR/LF in names, impossible dates, OPTIONS.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client

from accounts.services import api_key_create
from tests.factories import MembershipFactory
from tests.isolation_world import build_world
from tests.test_isolation import ROUTES, fill_kwargs, url_for

TIMESTAMPS = ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "2025-02-30", "2025-02-30T00:00:00Z"]
QUERIES = [
    {"q": "a\x00b"},
    {"search": "a\x00b"},
    {"cursor": "%%%"},
    {"cursor": "cD0xMjM="},  # "p=123" where a UUID or a timestamp goes
    {"cursor": "cD0lMDA="},  # "p=%00"
    {"customer": "x\x00"},
    {"status": "\x00"},
    {"limit": "99999999999999999999"},
    {"window_days": "1e400"},
    {"until": "2025-02-30"},
    *[{"as_of": t, "until": t, "since": t} for t in TIMESTAMPS],
]
DEEP = "[" * 100_000 + "]" * 100_000
BODIES: list[str] = [
    DEEP,
    '{"trigger": ' + "[" * 5000 + "]" * 5000 + "}",
    '{"name": "\\ud800", "title": "\\udfff x"}',
    json.dumps({"name": "a\x00b", "reason": "a\x00b", "title": "x\x00"}),
    '{"value": 1e400, "properties": {"n": 1e400}, "attributes": {"n": 1e400}}',
    json.dumps({"timestamp": TIMESTAMPS[0], "send_at": TIMESTAMPS[1], "until": "2025-02-30"}),
    json.dumps({"name": "Eve\r\nBcc: x@evil.test", "email": "a@b.test\r\nBcc: c@d.test"}),
    json.dumps({"customers": [{"external_id": "x\ny", "attributes": {"n": "9" * 4000}}]}),
    json.dumps({"signals": [{"id": "1", "customer": "c", "name": "a.b", "timestamp": TIMESTAMPS[1]}]}),
    json.dumps({"signals": [{"id": "2", "customer": "c", "name": "a.b", "timestamp": TIMESTAMPS[0]}]}),
    '{"x": "' + "a" * (3 * 1024 * 1024) + '"}',
]
FORMS = [
    {"reason": "a\x00b", "name": "a\x00b", "title": "x\x00", "body": "b", "until": "2025-02-30"},
    {"until": "9999-12-31T23:59:59-05:00", "q": "\x00"},
    {"trigger": DEEP, "name": "x"},
    {"trigger": '{"not": ' * 20_000 + "{}" + "}" * 20_000, "until": "0001-01-01T00:00:00+05:00"},
]


def _trigger_forms(world) -> list[dict]:
    tenant = str(world.tenant_b.pk)
    return [{**form, "tenant": tenant} for form in FORMS if "trigger" in form]


def _routes():
    return [(n, r) for n, r in ROUTES if not r.startswith("admin/") or "preview" in r]


@pytest.fixture
def world(db):
    return build_world()


def _clients(world):
    """Tenant B's own key and admin: fill_kwargs points at B's objects, so requests reach the
    views' input handling instead of stopping at a 404 (the sweep is about input, not isolation)."""
    key = Client(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=world.tenant_b).secret}")
    key.raise_request_exception = False
    admin = Client(raise_request_exception=False)
    admin.force_login(MembershipFactory(tenant=world.tenant_b, role="admin", user__is_staff=True).user)
    return {"server_key": key, "admin": admin}


SENT: dict[str, int] = {}


@pytest.mark.parametrize(("name", "route"), _routes(), ids=[n or r for n, r in _routes()])
def test_no_hostile_input_gets_a_server_error(world, name, route):
    url = url_for(name, route, fill_kwargs(name, route, world))
    failures = []
    for persona, client in _clients(world).items():
        requests = [("options", url, None, None)]
        requests += [("get", url, q, None) for q in QUERIES]
        ctype = "application/json"
        requests += [("post", url, body, ctype) for body in BODIES]
        requests += [("patch", url, body, ctype) for body in BODIES[2:6]]
        if persona == "admin":
            requests += [("post", url, form, None) for form in FORMS + _trigger_forms(world)]
        for method, target, data, content_type in requests:
            if method == "options":
                response = client.options(target)
            elif method == "get":
                response = client.get(target, data)
            elif content_type:
                response = getattr(client, method)(target, data=data, content_type=content_type)
            else:
                response = client.post(target, data)
            SENT[persona] = SENT.get(persona, 0) + 1
            if response.status_code >= 500:
                shown = repr(data)[:80]
                failures.append(f"{persona} {method.upper()} {target} {shown} -> {response.status_code}")
    assert not failures, "\n".join(failures)
