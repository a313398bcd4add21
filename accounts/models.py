from __future__ import annotations

import hashlib
import re
import secrets
import zoneinfo
from typing import ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.utils.timezone import now

from accounts.scoping import TenantOwned


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra: object) -> User:
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: object) -> User:
        extra.update(is_staff=True, is_superuser=True)
        return self._create_user(email, password, **extra)


class User(AbstractUser):
    """Logs in with an email address; belongs to tenants through memberships."""

    username = None  # type: ignore[assignment]
    email = models.EmailField(unique=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    # The stubs type AbstractUser.objects as auth's UserManager, which is built around a
    # username; this manager takes an email instead and cannot subclass it compatibly.
    objects: ClassVar[UserManager] = UserManager()  # type: ignore[assignment]

    def __str__(self) -> str:
        return self.email


def default_contact_signals() -> list[str]:
    return ["support.contact"]


def default_activity_signals() -> list[str]:
    return ["session.*"]


def default_monitoring() -> dict:
    return {"signals": ["error.*"], "segment_by": None, "auto_open": False}


def new_publishable_key() -> str:
    return "pk_" + secrets.token_urlsafe(24)


def new_identity_secret() -> str:
    return "is_" + secrets.token_urlsafe(32)


# A declared numeric property, SIGNAL.KEY (`Tenant.numeric_properties`): a signal name, which may
# hold dots, and a property key, which may not.
NUMERIC_PROPERTY_PATTERN = r"^([a-z0-9_.:-]{1,100})\.([A-Za-z0-9_-]{1,64})$"  # Python and ECMA 262 alike
NUMERIC_PROPERTY_RE = re.compile(NUMERIC_PROPERTY_PATTERN)
MAX_NUMERIC_PROPERTIES = 10


class Tenant(models.Model):
    class Target(models.TextChoices):
        CONTACT = "contact", "Support contact"
        INACTIVITY = "inactivity", "Inactivity (retention risk)"

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, default="UTC")  # noqa: DJ012
    contact_signals = models.JSONField(default=default_contact_signals)
    prediction_target = models.CharField(max_length=20, choices=Target.choices, default=Target.CONTACT)
    activity_signals = models.JSONField(default=default_activity_signals)
    horizon_days = models.PositiveSmallIntegerField(default=14)
    numeric_properties = models.JSONField(
        default=list,
        blank=True,
        help_text="Numeric signal properties the risk model sums and averages, as SIGNAL.PROPERTY "
        "(e.g. purchase.amount).",
    )
    budget_max_messages = models.PositiveSmallIntegerField(default=2)
    budget_per_days = models.PositiveSmallIntegerField(default=7)
    allowed_origins = models.JSONField(default=list, blank=True)
    monitoring = models.JSONField(
        default=default_monitoring,
        help_text="Which signals the incident detector watches, how it segments them, and whether a "
        "detected spike opens the incident directly.",
    )
    scoring_interval_minutes = models.PositiveIntegerField(
        default=60, help_text="How often the pipeline scores customers and evaluates playbooks."
    )
    training_interval_days = models.PositiveIntegerField(
        default=7, help_text="How often the model is retrained."
    )
    publishable_key = models.CharField(max_length=64, unique=True, default=new_publishable_key)
    identity_secret = models.CharField(max_length=80, default=new_identity_secret)
    created_at = models.DateTimeField(default=now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class Membership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        AGENT = "agent", "Agent"
        VIEWER = "viewer", "Viewer"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="membership_tenant_user_uniq")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant} ({self.role})"

    @property
    def is_admin(self) -> bool:
        return self.role == self.Role.ADMIN

    @property
    def can_act(self) -> bool:
        """Agents and admins work the queue; viewers only look."""
        return self.role in (self.Role.ADMIN, self.Role.AGENT)


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiKey(TenantOwned):
    """A server key: shown once, stored as a SHA-256 hash, found by its visible prefix."""

    PREFIX_LEN = 11  # "sk_" + 8 characters

    name = models.CharField(max_length=100, default="Server key")
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "created_at"], name="apikey_tenant_created")]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class AuditLog(TenantOwned):
    """Append-only record of admin and agent actions (no edit path in the app)."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=100)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=now)

    class Meta:
        indexes = [models.Index(fields=["tenant", "-created_at"], name="audit_tenant_created")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor} {self.action}"
