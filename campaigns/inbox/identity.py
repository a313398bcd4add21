"""Who is asking: the tenant behind a publishable key and the customer a tenant-signed JWT names.

A request names the tenant with `X-Publishable-Key` and the customer with a JWT (HS256,
`sub` = external_id, `exp` required and at most 24 h ahead) signed with the tenant's
identity secret. The tenant behind a key is kept in process memory for a few seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

import jwt
from django.conf import settings

from accounts.models import Tenant

MAX_TOKEN_LIFETIME = timedelta(hours=24)


CLOCK_LEEWAY_SECONDS = 60


TENANT_MEMO_SECONDS = 10.0


@dataclass(frozen=True)
class InboxTenant:
    id: int
    identity_secret: str
    allowed_origins: frozenset[str]


class InboxAuthError(Exception):
    status = 401


class InboxForbidden(InboxAuthError):
    status = 403


_tenant_memo: dict[str, tuple[float, InboxTenant | None]] = {}


def settings_int(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def tenant_for_publishable_key(key: str) -> InboxTenant | None:
    """The tenant behind a publishable key, memoised per process for TENANT_MEMO_SECONDS.

    Rotating a key or the identity secret therefore takes effect within seconds.
    """
    now = time.monotonic()
    hit = _tenant_memo.get(key)
    if hit is not None and now - hit[0] < TENANT_MEMO_SECONDS:
        return hit[1]
    row = (
        Tenant.objects.filter(publishable_key=key)
        .values_list("id", "identity_secret", "allowed_origins")
        .first()
    )
    found = None
    if row is not None:
        found = InboxTenant(id=row[0], identity_secret=row[1], allowed_origins=frozenset(row[2] or ()))
    if len(_tenant_memo) > 10_000:
        _tenant_memo.clear()
    _tenant_memo[key] = (now, found)
    return found


def customer_from_token(token: str, tenant: InboxTenant) -> str:
    """Verify a customer JWT for `tenant` and return its `sub` (the customer's external_id)."""
    try:
        claims = jwt.decode(
            token,
            tenant.identity_secret,
            algorithms=["HS256"],
            options={"require": ["exp", "sub"]},
            leeway=CLOCK_LEEWAY_SECONDS,
        )
    except jwt.PyJWTError as exc:
        raise InboxAuthError(f"invalid token: {exc}") from exc
    if not isinstance(claims["exp"], int | float) or claims["exp"] > time.time() + (
        MAX_TOKEN_LIFETIME.total_seconds() + CLOCK_LEEWAY_SECONDS
    ):
        raise InboxAuthError("invalid token: exp more than 24 h ahead")
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub or len(sub) > 255 or "\x00" in sub:
        raise InboxAuthError("invalid token: bad sub")
    return sub
