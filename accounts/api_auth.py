"""Server-key authentication for the HTTP API: `Authorization: Bearer sk_...`."""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.models import ApiKey, Tenant, hash_key


@dataclass(frozen=True)
class KeyPrincipal:
    """What `request.user` is for an API call: the tenant behind a server key."""

    tenant: Tenant
    key: ApiKey
    is_authenticated: bool = True
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False

    @property
    def pk(self) -> str:
        return f"key:{self.key.prefix}"


def bearer_token(request: Request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def api_key_authenticate(raw: str) -> ApiKey | None:
    if not raw.startswith("sk_") or len(raw) < ApiKey.PREFIX_LEN + 10:
        return None
    key = (
        ApiKey.objects.unscoped()
        .select_related("tenant")
        .filter(prefix=raw[: ApiKey.PREFIX_LEN], revoked_at=None)
        .first()
    )
    if key is None or not hmac.compare_digest(key.key_hash, hash_key(raw)):
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > timedelta(minutes=5):
        ApiKey.objects.for_tenant(key.tenant_id).filter(pk=key.pk).update(last_used_at=now)
    return key


class ServerKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[KeyPrincipal, ApiKey] | None:
        token = bearer_token(request)
        if token is None:
            return None
        key = api_key_authenticate(token)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return KeyPrincipal(tenant=key.tenant, key=key), key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


def basic_username(request: Request) -> str | None:
    """The user name of `Authorization: Basic base64(user:password)`, or None."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


class WriteKeyAuthentication(ServerKeyAuthentication):
    """Segment's write-key convention: HTTP Basic with the server key as the user name (the
    password is empty and not checked, as Segment does). A Bearer key works too."""

    def authenticate(self, request: Request) -> tuple[KeyPrincipal, ApiKey] | None:
        token = basic_username(request)
        if token is None:
            return super().authenticate(request)
        key = api_key_authenticate(token)
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked write key.")
        return KeyPrincipal(tenant=key.tenant, key=key), key

    def authenticate_header(self, request: Request) -> str:
        return 'Basic realm="segment"'
