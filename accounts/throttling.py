"""Login throttling: the username that django-axes counts failures against."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def login_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """The email as typed, case- and space-folded, so `Ops@X.test ` and `ops@x.test` share one count."""
    raw = (credentials or {}).get("username")
    if raw is None:
        raw = request.POST.get("username", "")
    return str(raw).strip().lower()[:254]
