"""Error answers: JSON for `/api/` and `/ingest/` paths (clients parse them), styled pages elsewhere.

Wired as the project's handler400/403/404/500 (proactive.urls). DRF answers its own errors as JSON;
these cover what escapes it: unknown API paths, and any unhandled exception (a 500).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

API_PREFIXES = ("/api/", "/ingest/")

_MESSAGES = {
    400: "Bad request.",
    403: "You do not have access to this.",
    404: "Not found.",
    500: "Something went wrong on our side. It has been logged; try again later.",
}


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIXES)


def _answer(request: HttpRequest, status: int) -> HttpResponse:
    if is_api(request):
        return JsonResponse({"detail": _MESSAGES[status]}, status=status)
    try:
        return render(
            request, f"{status}.html", {"status": status, "message": _MESSAGES[status]}, status=status
        )
    except Exception:  # a broken template or database must not turn a 500 page into a second crash
        return HttpResponse(_MESSAGES[status], status=status, content_type="text/plain")


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _answer(request, 400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _answer(request, 403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _answer(request, 404)


def server_error(request: HttpRequest) -> HttpResponse:
    return _answer(request, 500)
