"""Content-Security-Policy on every HTML response, with a fresh script nonce per request.

Django 5.2 has no built-in CSP. Pages load their JavaScript from /static/ only (htmx, Chart.js,
static/js/*.js); `<script type="application/json">` data blocks (json_script) are not executed,
so CSP does not apply to them. A template that really needs an inline script writes
`<script nonce="{{ csp_nonce }}">` (the context processor below puts the nonce in every
template context). htmx is told, through `<meta name="htmx-config">` in base.html, not to inject
its indicator <style> (the rules live in app.css) and never to eval (`allowEval: false`): no
hx-on, no `js:` values, no `[...]` trigger filters.

The Django admin (5.2) has no inline scripts and passes the same policy (checked in Chromium by
tests/security/test_csp_browser.py), so there is no looser policy for /admin/.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"


def policy(nonce: str) -> str:
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            # 'unsafe-inline' for styles only: templates use style="" attributes (bar widths, small
            # layout touches), the review queue and the demo page have a <style> block, and the
            # in-app widget writes its <style> into its Shadow DOM. Styles cannot run code.
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "object-src 'none'",
        ]
    )


class ContentSecurityPolicyMiddleware:
    """Give each request a nonce (request.csp_nonce) and send the policy with HTML responses.

    JSON (the API, the widget's cross-origin inbox endpoints) and files get no header: CSP governs
    documents, and the inbox's CORS headers are left exactly as the views set them.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        nonce = secrets.token_urlsafe(18)
        request.csp_nonce = nonce  # type: ignore[attr-defined]
        response = self.get_response(request)
        content_type = response.get("Content-Type", "")
        # A 204 (the widget's CORS preflight) is text/html by Django's default but has no document.
        if content_type.startswith("text/html") and response.status_code != 204 and HEADER not in response:
            response[HEADER] = policy(nonce)
        return response


def csp_nonce(request: HttpRequest) -> dict[str, str]:
    """Template context processor: {{ csp_nonce }} for `<script nonce="...">`."""
    return {"csp_nonce": getattr(request, "csp_nonce", "")}
