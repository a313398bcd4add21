"""Every HTML page carries the Content-Security-Policy with a fresh nonce, and no page has a script
the policy would block: no inline event handlers, and an inline <script> only with the nonce."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from proactive.csp import HEADER
from tests.security.csp_world import build_csp_world, build_demo_tenant

NONCE = re.compile(r"script-src 'self' 'nonce-([A-Za-z0-9_-]{20,})'")
SCRIPT = re.compile(r"<script\b([^>]*)>", re.I)
EVENT_HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)


@pytest.fixture(autouse=True)
def no_page_cache(monkeypatch):
    monkeypatch.setattr("dashboard.selectors.PAGE_CACHE_SECONDS", 0)


def nonce_of(response) -> str:
    header = response.get(HEADER)
    assert header, f"no {HEADER} on {response.request['PATH_INFO']}"
    match = NONCE.search(header)
    assert match, header
    return match.group(1)


def assert_scripts_allowed(html: str, nonce: str, where: str) -> None:
    for attrs in SCRIPT.findall(html):
        if re.search(r"\ssrc=", attrs) or re.search(r"""\stype=["']application/json["']""", attrs):
            continue
        assert f'nonce="{nonce}"' in attrs, f"{where}: inline <script{attrs}> without this request's nonce"
    handler = EVENT_HANDLER.search(html)
    assert handler is None, f"{where}: inline event handler {handler.group(0)!r}"
    assert "javascript:" not in html.lower(), f"{where}: javascript: URL"


def test_the_policy_is_the_strict_one(client, db):
    header = client.get("/login/")[HEADER]
    directives = dict(d.strip().split(" ", 1) for d in header.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"].startswith("'self' 'nonce-")
    assert "unsafe" not in directives["script-src"]
    assert directives["style-src"] == "'self' 'unsafe-inline'"
    assert directives["img-src"] == "'self' data:"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["base-uri"] == "'self'"
    assert directives["form-action"] == "'self'"
    assert directives["object-src"] == "'none'"


def test_every_request_gets_a_fresh_nonce(client, db):
    nonces = {nonce_of(client.get("/login/")) for _ in range(5)}
    assert len(nonces) == 5


def test_every_html_page_carries_the_policy_and_only_allowed_scripts(tenant, settings):
    settings.DEMO = True
    build_demo_tenant()
    user, pages = build_csp_world(tenant)
    client = Client()
    client.force_login(user)
    seen = set()
    for name, path in pages.items():
        response = client.get(path)
        assert response.status_code == 200, (name, response.status_code)
        assert response["Content-Type"].startswith("text/html")
        nonce = nonce_of(response)
        assert nonce not in seen
        seen.add(nonce)
        assert_scripts_allowed(response.content.decode(), nonce, name)
    anonymous = Client()
    for path in ["/login/", "/password-reset/", "/no-such-page/"]:
        response = anonymous.get(path)
        assert_scripts_allowed(response.content.decode(), nonce_of(response), path)


def test_a_template_can_use_the_nonce(rf):
    from django.template import engines

    from proactive.csp import ContentSecurityPolicyMiddleware

    template = engines["django"].from_string('<script nonce="{{ csp_nonce }}">1</script>')

    def view(request):
        from django.http import HttpResponse

        return HttpResponse(template.render({}, request))

    response = ContentSecurityPolicyMiddleware(view)(rf.get("/"))
    nonce = nonce_of(response)
    assert f'<script nonce="{nonce}">' in response.content.decode()


def test_json_and_the_widgets_cors_answers_get_no_policy(client, db):
    assert HEADER not in client.get("/healthz")
    assert HEADER not in client.get("/api/v1/inbox", HTTP_ORIGIN="https://app.example.com")
    assert HEADER not in client.options("/api/v1/inbox", HTTP_ORIGIN="https://app.example.com")
