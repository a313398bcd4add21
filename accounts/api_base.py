"""The DRF base every tenant API view inherits: key auth, tenant resolution, scoping."""

from __future__ import annotations

import math
from typing import Any, final

from django.db.models import QuerySet
from rest_framework import status
from rest_framework.exceptions import NotAuthenticated, PermissionDenied
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
    ordering: str | list[str] | tuple[str, ...] = "-pk"

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"results": data, "next": self.get_next_link()})

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

    def paginate_queryset(self, queryset: Any) -> list[Any]:
        """Tenant lists always page (cursor pagination), so a page is never None."""
        page = super().paginate_queryset(queryset)
        if page is None:
            raise AssertionError(f"{type(self).__name__} needs a pagination_class")
        return page


def exception_handler(exc: Exception, context: dict) -> Response | None:
    response = drf_exception_handler(exc, context)
    if response is not None and response.status_code == status.HTTP_429_TOO_MANY_REQUESTS:
        response["Retry-After"] = str(max(1, math.ceil(getattr(exc, "wait", None) or 1)))
    return response
