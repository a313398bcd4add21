"""The DRF base every tenant API view inherits: key auth, tenant resolution, scoping."""

from __future__ import annotations

import math
from typing import Any, final

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from rest_framework import status
from rest_framework.exceptions import NotAuthenticated, NotFound, PermissionDenied
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from accounts.api_auth import KeyPrincipal
from accounts.models import Tenant


class ContractCursorPagination(CursorPagination):
    """`{"results": [...], "next": url|null}` as the contract says."""

    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 1000
    ordering = "-pk"

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"results": data, "next": self.get_next_link()})

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> Any:
        self._model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Request) -> Any:
        """DRF's decoding, plus a position that the ordering column can hold: a crafted cursor
        (a string where a UUID or a number goes, NUL, out of range) is a 404, never a 500."""
        cursor = super().decode_cursor(request)
        if cursor is None or cursor.position is None:
            return cursor
        name = self.ordering[0].lstrip("-") if isinstance(self.ordering, list | tuple) else "pk"
        model = getattr(self, "_model", None)
        if model is None:
            return cursor
        field = model._meta.pk if name == "pk" else model._meta.get_field(name)
        try:
            if "\x00" in str(cursor.position):
                raise ValueError("NUL")
            value = field.to_python(cursor.position)
            if isinstance(value, int) and not -(2**63) <= value < 2**63:
                raise ValueError("out of range")
            if hasattr(value, "year") and hasattr(value, "tzinfo") and value.tzinfo is None:
                raise ValueError("naive datetime")
        except (DjangoValidationError, ValueError, TypeError, OverflowError):
            raise NotFound(self.invalid_cursor_message) from None
        return cursor

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {
            "type": "object",
            "required": ["results", "next"],
            "properties": {"results": schema, "next": {"type": "string", "nullable": True, "format": "uri"}},
        }


class TenantAPIView(GenericAPIView):
    """Base for server-key endpoints. `self.tenant` is the key's tenant.

    Subclasses implement `safely_get_queryset(queryset)` and receive a queryset already
    scoped to the tenant; `get_queryset` is final so the scope cannot be dropped.
    """

    pagination_class = ContractCursorPagination

    @property
    def tenant(self) -> Tenant:
        user = self.request.user
        if not isinstance(user, KeyPrincipal):
            raise NotAuthenticated()
        return user.tenant

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if not isinstance(request.user, KeyPrincipal):
            raise PermissionDenied("A server key is required.")

    @final
    def get_queryset(self) -> QuerySet:
        model = self.queryset.model if self.queryset is not None else None
        if model is None:
            raise AssertionError(f"{type(self).__name__} needs a `queryset` to scope")
        return self.safely_get_queryset(model.objects.for_tenant(self.tenant))

    def safely_get_queryset(self, queryset: QuerySet) -> QuerySet:
        return queryset


def exception_handler(exc: Exception, context: dict) -> Response | None:
    response = drf_exception_handler(exc, context)
    if response is not None and response.status_code == status.HTTP_429_TOO_MANY_REQUESTS:
        response["Retry-After"] = str(max(1, math.ceil(getattr(exc, "wait", None) or 1)))
    return response
