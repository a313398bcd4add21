"""Shared fixtures for the queue/inbox/delivery tests: a private cache per test and token minting."""

from __future__ import annotations

import time
import uuid
from html.parser import HTMLParser

import jwt
import pytest

from campaigns.inbox import identity as inbox_identity
from campaigns.inbox import store as inbox_store
from campaigns.inbox import views as inbox_views


@pytest.fixture(autouse=True)
def private_cache(settings):
    """A per-test in-memory cache: tests must not share inbox versions or rate counters."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}
    }
    inbox_identity._tenant_memo.clear()
    inbox_views._origin_memo.clear()
    inbox_views.INBOX_LIMITER.reset()
    inbox_store._local_bodies.clear()
    yield
    inbox_identity._tenant_memo.clear()
    inbox_views._origin_memo.clear()
    inbox_views.INBOX_LIMITER.reset()
    inbox_store._local_bodies.clear()


def mint(secret: str, sub: str, *, exp_in: int = 3600, alg: str = "HS256", **extra) -> str:
    claims = {"sub": sub, "exp": int(time.time()) + exp_in, **extra}
    return jwt.encode(claims, secret, algorithm=alg)


class _Executable(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "iframe", "img", "svg", "object", "embed", "style", "form"):
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"{tag}[{name}]")
            scheme = value.split("/")[0] if name in ("href", "src") and value else ""
            if ":" in scheme and not value.lower().startswith(("http:", "https:", "mailto:")):
                self.found.append(f"{tag}[{name}={value}]")


def executable_parts(fragment: str) -> list[str]:
    """Tags, handlers and URL schemes in an HTML fragment that a browser would run."""
    parser = _Executable()
    parser.feed(fragment)
    return parser.found
