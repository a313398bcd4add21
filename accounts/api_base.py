"""The DRF base every tenant API view inherits: key auth, tenant resolution, scoping."""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any, final

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q, QuerySet
from django.http import QueryDict
from rest_framework import serializers, status
from rest_framework.exceptions import NotAuthenticated, NotFound, ParseError, PermissionDenied
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import BasePagination, CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import exception_handler as drf_exception_handler

from accounts.api_auth import KeyPrincipal
from accounts.models import Tenant
from accounts.rate_limits import BACKTEST_BUDGET, PREVIEW_BUDGET, Budget, tenant_key


def contract_list_schema(schema: dict) -> dict:
    """The OpenAPI shape of a contract list: `{"results": [...], "next": url|null}`."""
    return {
        "type": "object",
        "required": ["results", "next"],
        "properties": {"results": schema, "next": {"type": "string", "nullable": True, "format": "uri"}},
    }


def limit_param(request: Request, name: str, default: int, maximum: int) -> int:
    """`limit` as the schema documents it: a whole number of at least 1, else a 400 (it was
    silently replaced by the default, so a client's mistake went unseen); above `maximum` it is
    capped, as the contract says."""
    if len(request.query_params.getlist(name)) > 1:
        raise ParseError(f"{name} is given more than once.")
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ParseError(f"{name} must be a whole number of at least 1.")
    return min(value, maximum)  # the contract caps it ("at most 1000"), as it always did


class QuerySerializer(serializers.Serializer):
    """A query string read as its schema describes it: each parameter at most once, else a 400
    `{"name": ["Given more than once."]}` (DRF would silently take the last value).

    An empty value (`?status=`) means the filter is not set, as it always has: clients that
    build every parameter of the contract's `?playbook=&campaign=&status=&customer=` and leave
    some empty keep working. Schemathesis's negative-data check calls that lenient; the fuzz test
    excludes that one check on these lists and says why."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, QueryDict):
            errors: dict[str, list[str]] = {}
            names: list[str] = list(self.fields)  # the stubs type iteration as Field
            for name in names:
                if len(data.getlist(name)) > 1:
                    errors[name] = ["Given more than once."]
            if errors:
                raise serializers.ValidationError(errors)
            data = {name: data[name] for name in names if data.get(name, "") != ""}
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    """A JSON string as is: no number read as its text, no whitespace trimmed."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false, not 0, 1 or "yes"."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer, not "14" or 14.0."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class ContractCursorPagination(CursorPagination):
    """`{"results": [...], "next": url|null}` as the contract says."""

    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 1000
    ordering: str | list[str] | tuple[str, ...] = "-pk"

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"results": data, "next": self.get_next_link()})

    def get_page_size(self, request: Request) -> int | None:
        return limit_param(request, self.page_size_query_param, self.page_size, self.max_page_size)

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
        return contract_list_schema(schema)

    def get_schema_operation_parameters(self, view: Any) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1}
                parameter["description"] = (
                    f"Page size; at most {self.max_page_size} (larger values are capped)."
                )
        return parameters


class KeysetPagination(BasePagination):
    """Descending keyset pages over (`key_field`, pk): every row exactly once, however many share
    a key value. DRF's CursorPagination skips past ties with an offset capped at 1,000 rows, so
    a list with more equal values than that ended early. The cursor is the last row's
    (value, pk), opaque to clients; a malformed one is a 400."""

    key_field = "score"
    page_size = 50
    max_page_size = 1000
    page_size_query_param = "limit"
    cursor_query_param = "cursor"

    def _limit(self, request: Request) -> int:
        return limit_param(request, self.page_size_query_param, self.page_size, self.max_page_size)

    def _decode(self, raw: str | None) -> tuple[float, int] | None:
        if raw is None:
            return None
        try:
            value, pk = json.loads(base64.urlsafe_b64decode(raw.encode("ascii") + b"=" * (-len(raw) % 4)))
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError
            if isinstance(pk, bool) or not isinstance(pk, int):
                raise ValueError
        except (ValueError, TypeError, UnicodeError, binascii.Error):
            raise ParseError("Invalid cursor.") from None
        return value, pk

    @staticmethod
    def _encode(value: float, pk: int) -> str:
        return base64.urlsafe_b64encode(json.dumps([value, pk]).encode()).decode().rstrip("=")

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list:
        self.request = request
        key = self.key_field
        limit = self._limit(request)
        if len(request.query_params.getlist(self.cursor_query_param)) > 1:
            raise ParseError("Invalid cursor.")
        after = self._decode(request.query_params.get(self.cursor_query_param))
        queryset = queryset.order_by(f"-{key}", "-pk")
        if after is not None:
            value, pk = after
            # The `lte` bound lets the (tenant, key desc, pk desc) index start at the cursor.
            queryset = queryset.filter(
                Q(**{f"{key}__lt": value}) | Q(**{key: value, "pk__lt": pk}), **{f"{key}__lte": value}
            )
        rows = list(queryset[: limit + 1])
        self.next_after = None
        if len(rows) > limit:
            rows = rows[:limit]
            self.next_after = (getattr(rows[-1], key), rows[-1].pk)
        return rows

    def get_next_link(self) -> str | None:
        if self.next_after is None:
            return None
        url = self.request.build_absolute_uri()
        return replace_query_param(url, self.cursor_query_param, self._encode(*self.next_after))

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"results": data, "next": self.get_next_link()})

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return contract_list_schema(schema)

    def get_schema_operation_parameters(self, view: Any) -> list[dict]:
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "schema": {"type": "string", "minLength": 1},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "schema": {"type": "integer", "minimum": 1},
                "description": f"Page size; at most {self.max_page_size} (larger values are capped).",
            },
        ]


class TenantAPIView(GenericAPIView):
    """Base for server-key endpoints. `self.tenant` is the key's tenant.

    Subclasses implement `safely_get_queryset(queryset)` and receive a queryset already
    scoped to the tenant; `get_queryset` is final so the scope cannot be dropped.
    """

    pagination_class: type[BasePagination] | None = ContractCursorPagination

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
        # Read on the class, where subclasses declare it (the stubs type an instance read of a
        # Manager-valued attribute as a call to the model descriptor's __get__).
        queryset = type(self).queryset
        model = queryset.model if queryset is not None else None
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


def add_auth_errors(result: dict, **kwargs: Any) -> dict:
    """drf-spectacular postprocessing hook: every operation that needs a server key answers 401
    `{"detail"}` without a valid one (DRF does, before the view runs), so the schema says so."""
    error = {"type": "object", "required": ["detail"], "properties": {"detail": {"type": "string"}}}
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict) or not operation.get("security"):
                continue
            if any(p.get("name") == "cursor" for p in operation.get("parameters", [])):
                operation["responses"].setdefault(
                    "404",
                    {
                        "description": "Invalid cursor",
                        "content": {"application/json": {"schema": error}},
                    },
                )
            if any(p.get("name") == "limit" for p in operation.get("parameters", [])):
                operation["responses"].setdefault(
                    "400",
                    {
                        "description": "Invalid query (limit out of range)",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                )
            operation["responses"].setdefault(
                "401",
                {
                    "description": "Missing or invalid server key",
                    "content": {"application/json": {"schema": error}},
                },
            )
    return result


class TenantBudgetThrottle(BaseThrottle):
    """One hit per request on `budget`, keyed by the server key's tenant (a 429 with
    Retry-After once the tenant's budget for the minute is spent)."""

    budget: Budget

    def allow_request(self, request: Request, view: Any) -> bool:
        if not isinstance(request.user, KeyPrincipal):
            return True
        self._wait = self.budget.wait(tenant_key(request.user.tenant.pk))
        return not self._wait

    def wait(self) -> float | None:
        return getattr(self, "_wait", 60)


class PreviewThrottle(TenantBudgetThrottle):
    budget = PREVIEW_BUDGET


class BacktestThrottle(TenantBudgetThrottle):
    budget = BACKTEST_BUDGET


def exception_handler(exc: Exception, context: dict) -> Response | None:
    response = drf_exception_handler(exc, context)
    if response is not None and response.status_code == status.HTTP_429_TOO_MANY_REQUESTS:
        response["Retry-After"] = str(max(1, math.ceil(getattr(exc, "wait", None) or 1)))
    return response
