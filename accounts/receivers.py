"""Model hooks: `is_staff` follows admin memberships however a membership changes (service,
Django admin, deletion). Becoming a tenant admin grants it; losing the last admin membership
takes it away (superusers keep it). Staff users who never were tenant admins are left alone."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from accounts.models import Membership, User
from accounts.services import user_sync_staff


@receiver(pre_save, sender=Membership, dispatch_uid="membership_remember_role")
def membership_remember_role(sender: type, instance: Membership, **kwargs: Any) -> None:
    previous = Membership.objects.filter(pk=instance.pk).values_list("role", flat=True).first()
    instance._previous_role = previous  # type: ignore[attr-defined]


@receiver(post_save, sender=Membership, dispatch_uid="membership_sync_staff_save")
def membership_saved(sender: type, instance: Membership, **kwargs: Any) -> None:
    was_admin = getattr(instance, "_previous_role", None) == Membership.Role.ADMIN
    if instance.is_admin or was_admin:
        _sync(instance.user_id)


@receiver(post_delete, sender=Membership, dispatch_uid="membership_sync_staff_delete")
def membership_deleted(sender: type, instance: Membership, **kwargs: Any) -> None:
    if instance.is_admin:
        _sync(instance.user_id)


def _sync(user_id: int) -> None:
    user = User.objects.filter(pk=user_id).first()
    if user is not None:
        user_sync_staff(user=user)
