"""Writes for tenants, users, memberships and keys."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from accounts.models import (
    ApiKey,
    AuditLog,
    Membership,
    Tenant,
    User,
    hash_key,
    new_identity_secret,
    new_publishable_key,
)


class TenantExists(ValueError):
    pass


@dataclass(frozen=True)
class NewApiKey:
    key: ApiKey
    secret: str


def api_key_create(*, tenant: Tenant, name: str = "Server key", created_by: User | None = None) -> NewApiKey:
    """Create a server key. The secret is returned once and only its hash is stored."""
    prefix = "sk_" + secrets.token_hex(4)
    secret = f"{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        tenant=tenant, name=name, prefix=prefix, key_hash=hash_key(secret), created_by=created_by
    )
    audit_record(
        tenant=tenant, actor=created_by, action="api_key.create", target=key, data={"prefix": prefix}
    )
    return NewApiKey(key=key, secret=secret)


def api_key_revoke(*, tenant: Tenant, key: ApiKey, actor: User | None = None) -> bool:
    changed = (
        ApiKey.objects.for_tenant(tenant).filter(pk=key.pk, revoked_at=None).update(revoked_at=timezone.now())
    )
    if changed:
        audit_record(
            tenant=tenant, actor=actor, action="api_key.revoke", target=key, data={"prefix": key.prefix}
        )
    return bool(changed)


def tenant_rotate_keys(
    *, tenant: Tenant, actor: User | None = None, publishable: bool, identity: bool
) -> Tenant:
    fields = []
    if publishable:
        tenant.publishable_key = new_publishable_key()
        fields.append("publishable_key")
    if identity:
        tenant.identity_secret = new_identity_secret()
        fields.append("identity_secret")
    if fields:
        tenant.save(update_fields=fields)
        audit_record(
            tenant=tenant, actor=actor, action="tenant.rotate_keys", target=tenant, data={"fields": fields}
        )
    return tenant


# Slugs no real tenant may take: `demo` is the demo's tenant, to which /demo/app/ (on only in the
# demo) hands out customer tokens; only the demo seed creates it.
RESERVED_SLUGS = frozenset({"demo"})


class TenantSlugReserved(ValueError):
    pass


def tenant_slug_check(slug: str) -> None:
    """Raises TenantSlugReserved for a slug kept for the product's own use."""
    if slug.lower() in RESERVED_SLUGS:
        raise TenantSlugReserved(f"The slug {slug!r} is reserved; choose another")


@transaction.atomic
def tenant_create(
    *,
    slug: str,
    name: str | None = None,
    admin_email: str | None = None,
    admin_password: str | None = None,
    reserved_ok: bool = False,
) -> tuple[Tenant, NewApiKey]:
    """Create a tenant with its first server key. `reserved_ok` is for the demo seed only."""
    if not reserved_ok:
        tenant_slug_check(slug)
    if Tenant.objects.filter(slug=slug).exists():
        raise TenantExists(f"A tenant with slug {slug!r} already exists")
    tenant = Tenant.objects.create(slug=slug, name=name or slug.replace("-", " ").title())
    if admin_email:
        user = user_get_or_create(email=admin_email, password=admin_password)
        membership_set(tenant=tenant, user=user, role=Membership.Role.ADMIN)
    return tenant, api_key_create(tenant=tenant, name="Initial server key")


def user_get_or_create(*, email: str, password: str | None = None) -> User:
    user = User.objects.filter(email__iexact=email).first()
    if user is None:
        user = User.objects.create_user(email=email, password=password)
    elif password:
        user.set_password(password)
        user.save(update_fields=["password"])
    return user


def membership_set(*, tenant: Tenant, user: User, role: str) -> Membership:
    membership, _ = Membership.objects.update_or_create(tenant=tenant, user=user, defaults={"role": role})
    return membership  # accounts.receivers keeps user.is_staff in step


def user_sync_staff(*, user: User) -> bool:
    """Tenant admins configure their tenant in the (tenant-scoped) Django admin, so `is_staff`
    follows whether the user is an admin of any tenant: a demoted or removed admin loses it.
    Superusers keep it. Returns the new value. Runs after every membership save or delete."""
    staff = user.is_superuser or Membership.objects.filter(user=user, role=Membership.Role.ADMIN).exists()
    if user.is_staff != staff:
        User.objects.filter(pk=user.pk).update(is_staff=staff)
        user.is_staff = staff
    return staff


def audit_record(
    *, tenant: Tenant, actor: User | None, action: str, target: object = None, data: dict | None = None
) -> AuditLog:
    return AuditLog.objects.create(
        tenant=tenant,
        actor=actor if actor is not None and actor.is_authenticated else None,
        action=action,
        target_type=type(target).__name__ if target is not None else "",
        target_id=str(getattr(target, "pk", "")) if target is not None else "",
        data=data or {},
    )


def tenant_update_settings(*, tenant: Tenant, data: dict) -> Tenant:
    """Apply validated settings in the contract's shape (see accounts.api)."""
    tenant.name = data["name"]
    tenant.timezone = data["timezone"]
    tenant.contact_signals = data["contact_signals"]
    tenant.prediction_target = data["prediction"]["target"]
    tenant.activity_signals = data["prediction"]["activity_signals"]
    tenant.horizon_days = data["prediction"]["horizon_days"]
    tenant.numeric_properties = data["prediction"].get("numeric_properties", tenant.numeric_properties)
    tenant.budget_max_messages = data["contact_budget"]["max_messages"]
    tenant.budget_per_days = data["contact_budget"]["per_days"]
    tenant.allowed_origins = data["allowed_origins"]
    tenant.monitoring = dict(data["monitoring"])
    tenant.save(
        update_fields=[
            "name",
            "timezone",
            "contact_signals",
            "prediction_target",
            "activity_signals",
            "horizon_days",
            "numeric_properties",
            "budget_max_messages",
            "budget_per_days",
            "allowed_origins",
            "monitoring",
        ]
    )
    return tenant
