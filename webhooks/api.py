"""`GET|POST /api/v1/webhooks`, `DELETE /api/v1/webhooks/{id}`."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api_base import ContractCursorPagination, TenantAPIView
from webhooks.events import EVENT_TYPES
from webhooks.models import WebhookEndpoint
from webhooks.services import WebhookError, endpoint_create, endpoint_delete


class NewestFirst(ContractCursorPagination):
    ordering = ("-created_at", "-id")


class WebhookOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "events", "enabled", "created_at"]

    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_TYPES))


class WebhookCreatedSerializer(WebhookOutputSerializer):
    secret = serializers.CharField(help_text="The signing secret (whsec_...): returned only here, once.")

    class Meta(WebhookOutputSerializer.Meta):
        fields = [*WebhookOutputSerializer.Meta.fields, "secret"]


class WebhookInputSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=500)
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_TYPES), min_length=1)


class WebhookListView(TenantAPIView):
    queryset = WebhookEndpoint.objects.all()
    serializer_class = WebhookOutputSerializer
    pagination_class = NewestFirst

    @extend_schema(responses=WebhookOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(WebhookOutputSerializer(page, many=True).data)

    @extend_schema(
        request=WebhookInputSerializer,
        responses={201: WebhookCreatedSerializer, 400: OpenApiResponse(description="Invalid url or events")},
    )
    def post(self, request: Request) -> Response:
        data = WebhookInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            endpoint, secret = endpoint_create(tenant=self.tenant, **data.validated_data)
        except WebhookError as exc:
            raise ValidationError({exc.field: [str(exc)]}) from exc
        endpoint.secret = secret
        return Response(WebhookCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class WebhookDetailView(TenantAPIView):
    queryset = WebhookEndpoint.objects.all()
    serializer_class = WebhookOutputSerializer

    @extend_schema(
        responses={204: None, 404: inline_serializer("WebhookNotFound", {"detail": serializers.CharField()})}
    )
    def delete(self, request: Request, webhook_id: str) -> Response:
        endpoint = self.get_queryset().filter(pk=webhook_id).first()
        if endpoint is None:
            raise NotFound()
        endpoint_delete(tenant=self.tenant, endpoint=endpoint)
        return Response(status=status.HTTP_204_NO_CONTENT)
