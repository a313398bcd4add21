"""API clients get JSON, also when the database is briefly unreachable."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict

logger = logging.getLogger(__name__)


class DatabaseUnavailableMiddleware:
    """Turn a lost database connection on /api/ into a 503 with Retry-After.

    The request's transaction was rolled back, so nothing was half-written and a client
    may resend the same batch (signal ids make resends idempotent).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        lost_database = isinstance(exception, OperationalError | InterfaceError)
        if not lost_database or not request.path.startswith("/api/"):
            return None
        logger.warning("database unavailable for %s: %s", request.path, exception)
        response = JsonResponse(
            {"detail": "The service is briefly unavailable; nothing from this request was stored. Retry."},
            status=503,
        )
        response["Retry-After"] = "5"
        return response


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _has_nul(values: QueryDict) -> bool:
    return any("\x00" in key or any("\x00" in v for v in vals) for key, vals in values.lists())


class RejectNulMiddleware:
    """A NUL character in the path, the query string or a form field is a 400 at the door.

    PostgreSQL text cannot hold NUL, so such input would fail deep in a view (a search, a
    customer URL, a queue reason, a key name) as a 500. JSON bodies are checked by the API's
    parser (accounts.api_parsers) with a field-naming error.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        bad = "\x00" in request.path or _has_nul(request.GET)
        api = request.path.startswith(("/api/", "/ingest/"))
        # API views read the raw body themselves (reading request.POST here would consume it).
        if not bad and not api and request.method == "POST" and request.content_type in FORM_TYPES:
            try:
                bad = _has_nul(request.POST)
            except Exception:  # noqa: BLE001 (a malformed body: let the view's own handling answer)
                bad = False
        if bad:
            message = "NUL characters are not allowed in the URL, query string or form fields."
            if api:
                return JsonResponse({"detail": message}, status=400)
            return HttpResponse(message, status=400, content_type="text/plain")
        return self.get_response(request)
