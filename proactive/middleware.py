"""API clients get JSON, also when the database is briefly unreachable."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

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
