"""The one tenant-scoping mechanism.

Every tenant-owned model inherits `TenantOwned`. Its default manager returns a
queryset that refuses to run unless it is filtered on its own `tenant` column
(`Model.objects.for_tenant(t)`, `filter(tenant=...)`, `filter(tenant__in=...)` or a
reverse relation from a Tenant). Forgetting the scope therefore raises
`TenantScopeError` instead of returning every tenant's rows. The escape hatch is
loudly named: `Model.objects.unscoped()` (superuser admin, cross-tenant schedulers).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Self

from django.db import models
from django.db.models.expressions import Col
from django.db.models.lookups import Lookup
from django.db.models.sql.where import AND, WhereNode


class TenantScopeError(RuntimeError):
    pass


def _where_is_scoped(node: WhereNode, base_table: str) -> bool:
    if node.connector != AND or node.negated:
        return False
    for child in node.children:
        if isinstance(child, WhereNode) and _where_is_scoped(child, base_table):
            return True
        if (
            isinstance(child, Lookup)
            and child.lookup_name in ("exact", "in")
            and isinstance(child.lhs, Col)
            and child.lhs.alias == base_table
            and child.lhs.target.name == "tenant"
        ):
            return True
    return False


if TYPE_CHECKING:

    class _QuerySet(models.QuerySet):
        """django-stubs leaves out the private cloning methods this module extends."""

        def _chain(self) -> Self: ...
        def _clone(self) -> Self: ...

else:
    _QuerySet = models.QuerySet


class TenantQuerySet(_QuerySet):
    _unscoped = False

    def for_tenant(self, tenant: Any) -> Self:
        if tenant is None:
            raise TenantScopeError(f"{self.model.__name__}.for_tenant(None): no tenant, no rows")
        return self.filter(tenant=tenant)

    def unscoped(self) -> Self:
        """Bypass the tenant check. Only for superusers and cross-tenant jobs."""
        clone = self._chain()
        clone._unscoped = True
        return clone

    def _clone(self) -> Self:
        clone = super()._clone()
        clone._unscoped = self._unscoped
        return clone

    def _check_scope(self) -> None:
        if self._unscoped:
            return
        if not _where_is_scoped(self.query.where, self.query.base_table or self.model._meta.db_table):
            raise TenantScopeError(
                f"Unscoped query on {self.model.__name__}: use .for_tenant(tenant), or .unscoped() on purpose"
            )

    def _fetch_all(self) -> None:
        if self._result_cache is None:
            self._check_scope()
        super()._fetch_all()

    def count(self) -> int:
        self._check_scope()
        return super().count()

    def exists(self) -> bool:
        self._check_scope()
        return super().exists()

    def aggregate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self._check_scope()
        return super().aggregate(*args, **kwargs)

    def update(self, **kwargs: Any) -> int:
        self._check_scope()
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        self._check_scope()
        return super().delete()

    def iterator(self, chunk_size: int | None = None) -> Iterator[Any]:
        self._check_scope()
        return super().iterator(chunk_size=chunk_size)


TenantManager = models.Manager.from_queryset(TenantQuerySet)


class TenantOwned(models.Model):
    """Base for every row that belongs to a tenant."""

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")

    objects = TenantManager()

    class Meta:
        abstract = True
