"""Playbooks, campaigns, incidents and outreach over the server API (contract v1)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import UnsupportedMediaType
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api_base import (
    BacktestThrottle,
    ContractCursorPagination,
    PreviewThrottle,
    QuerySerializer,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    TenantAPIView,
)
from campaigns import campaign_sends, incidents, monitoring, playbooks, rules, selectors
from campaigns.api_schema import (
    BAD_REQUEST,
    CONFLICT,
    NAME_TAKEN,
    NOT_FOUND,
    NOT_SUSPECTED,
    TOO_MANY,
    ActionField,
    BacktestOutSerializer,
    CampaignOutSerializer,
    ConditionField,
    EffectivenessOutSerializer,
    IncidentOutSerializer,
    OutreachOutSerializer,
    PlaybookOutSerializer,
    PreviewOutSerializer,
)
from campaigns.conditions import ConditionError, parse_condition, render_text
from campaigns.effectiveness import effectiveness
from campaigns.models import Campaign, Incident, Outreach, Playbook
from campaigns.rules import COOLDOWN_DAYS, HOLDOUT_PERCENT


def _raise_400(exc: ConditionError) -> None:
    root = exc.path.split(".")[0].split("[")[0]
    raise serializers.ValidationError({root: [str(exc)]})


def _condition_field(value: Any, path: str) -> Any:
    try:
        parse_condition(value, path)
    except ConditionError as exc:
        raise serializers.ValidationError(str(exc)) from None
    return value


def _action_field(value: Any, path: str) -> dict[str, Any]:
    try:
        return rules.action_validate(value, path)
    except ConditionError as exc:
        raise serializers.ValidationError(str(exc)) from None


def _text(condition: Any, path: str) -> str:
    try:
        return render_text(parse_condition(condition, path))
    except ConditionError as exc:
        return f"invalid: {exc}"


class WindowQuerySerializer(QuerySerializer):
    """The query of the effectiveness reads, with the bounds `_int_param` enforces."""

    window_days = serializers.IntegerField(required=False, min_value=1, max_value=365)


class BacktestQuerySerializer(WindowQuerySerializer):
    days = serializers.IntegerField(required=False, min_value=1, max_value=90)


WINDOW_DAYS = WindowQuerySerializer


class NewestFirst(ContractCursorPagination):
    ordering = ("-created_at", "-id")


class OpenedNewestFirst(ContractCursorPagination):
    ordering = ("-opened_at", "-id")


class TriggeredNewestFirst(ContractCursorPagination):
    ordering = ("-triggered_at", "-id")


# ---- playbooks ---------------------------------------------------------------------------------


class PlaybookInputSerializer(serializers.Serializer):
    name = StrictCharField(max_length=200)
    enabled = StrictBooleanField(default=True)
    trigger = ConditionField()
    action = ActionField()
    cooldown_days = StrictIntegerField(min_value=COOLDOWN_DAYS.lo, max_value=COOLDOWN_DAYS.hi, default=14)
    holdout_percent = StrictIntegerField(
        min_value=HOLDOUT_PERCENT.lo, max_value=HOLDOUT_PERCENT.hi, default=10
    )
    review_expiry_hours = StrictIntegerField(min_value=1, max_value=24 * 30, default=72)

    def validate_trigger(self, value: Any) -> Any:
        return _condition_field(value, "trigger")

    def validate_action(self, value: Any) -> dict[str, Any]:
        return _action_field(value, "action")


def name_taken(tenant: Any, name: str | None, instance: Playbook | None = None) -> bool:
    """A name clash is a 409: the body is valid, the tenant's state is what conflicts."""
    if name is None:
        return False
    clash = Playbook.objects.for_tenant(tenant).filter(name=name)
    if instance is not None:
        clash = clash.exclude(pk=instance.pk)
    return clash.exists()


def playbook_data(playbook: Playbook) -> dict[str, Any]:
    return {
        "id": str(playbook.pk),
        "name": playbook.name,
        "enabled": playbook.enabled,
        "trigger": playbook.trigger,
        "trigger_text": _text(playbook.trigger, "trigger"),
        "action": playbook.action,
        "cooldown_days": playbook.cooldown_days,
        "holdout_percent": playbook.holdout_percent,
        "review_expiry_hours": playbook.review_expiry_hours,
        "created_at": playbook.created_at.isoformat(),
        "updated_at": playbook.updated_at.isoformat(),
    }


class PlaybookObjectMixin(TenantAPIView):
    queryset = Playbook.objects.none()
    lookup_url_kwarg = "playbook_id"

    def get_playbook(self) -> Playbook:
        playbook = selectors.playbook_get(tenant=self.tenant, playbook_id=self.kwargs["playbook_id"])
        if playbook is None:
            raise Http404
        return playbook


class PlaybookListView(TenantAPIView):
    queryset = Playbook.objects.none()
    serializer_class = PlaybookInputSerializer
    pagination_class = NewestFirst

    @extend_schema(operation_id="v1_playbooks_list", responses=PlaybookOutSerializer(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([playbook_data(p) for p in page])

    @extend_schema(
        request=PlaybookInputSerializer,
        responses={201: PlaybookOutSerializer, 400: BAD_REQUEST, 409: NAME_TAKEN},
    )
    def post(self, request: Request) -> Response:
        serializer = PlaybookInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if name_taken(self.tenant, serializer.validated_data["name"]):
            return Response({"detail": "A playbook with this name exists."}, status=status.HTTP_409_CONFLICT)
        try:
            playbook = playbooks.playbook_create(tenant=self.tenant, data=serializer.validated_data)
        except ConditionError as exc:
            _raise_400(exc)
        return Response(playbook_data(playbook), status=status.HTTP_201_CREATED)


class PlaybookDetailView(PlaybookObjectMixin, TenantAPIView):
    serializer_class = PlaybookInputSerializer

    @extend_schema(responses={200: PlaybookOutSerializer, 404: NOT_FOUND})
    def get(self, request: Request, playbook_id: str) -> Response:
        return Response(playbook_data(self.get_playbook()))

    @extend_schema(responses={200: PlaybookOutSerializer, 400: BAD_REQUEST, 404: NOT_FOUND, 409: NAME_TAKEN})
    def patch(self, request: Request, playbook_id: str) -> Response:
        playbook = self.get_playbook()
        serializer = PlaybookInputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        if name_taken(self.tenant, serializer.validated_data.get("name"), playbook):
            return Response({"detail": "A playbook with this name exists."}, status=status.HTTP_409_CONFLICT)
        try:
            playbook = playbooks.playbook_update(
                tenant=self.tenant, playbook=playbook, data=serializer.validated_data
            )
        except ConditionError as exc:
            _raise_400(exc)
        return Response(playbook_data(playbook))

    @extend_schema(responses={204: None, 404: NOT_FOUND})
    def delete(self, request: Request, playbook_id: str) -> Response:
        playbooks.playbook_delete(tenant=self.tenant, playbook=self.get_playbook())
        return Response(status=status.HTTP_204_NO_CONTENT)


class PlaybookPreviewView(PlaybookObjectMixin, TenantAPIView):
    throttle_classes = [PreviewThrottle]

    @extend_schema(
        request=None,
        responses={200: PreviewOutSerializer, 400: BAD_REQUEST, 404: NOT_FOUND, 429: TOO_MANY},
    )
    def post(self, request: Request, playbook_id: str) -> Response:
        """Preview the saved trigger, or an edited one sent as {"trigger": ...} before saving it."""
        playbook = self.get_playbook()
        trigger = playbook.trigger
        try:
            body = request.data
        except UnsupportedMediaType:  # the contract's preview has no body; any content type will do
            body = None
        if isinstance(body, dict) and "trigger" in body:
            trigger = body["trigger"]
        try:
            return Response(playbooks.playbook_preview(tenant=self.tenant, trigger=trigger))
        except ConditionError as exc:
            _raise_400(exc)
            raise


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    if len(request.query_params.getlist(name)) > 1:
        raise serializers.ValidationError({name: ["Given more than once."]})
    raw = request.query_params.get(name, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise serializers.ValidationError({name: [f"{raw!r} is not a whole number"]}) from None
    if not low <= value <= high:
        raise serializers.ValidationError({name: [f"between {low} and {high}"]})
    return value


class PlaybookEffectivenessView(PlaybookObjectMixin, TenantAPIView):
    @extend_schema(
        parameters=[WINDOW_DAYS],
        responses={200: EffectivenessOutSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    def get(self, request: Request, playbook_id: str) -> Response:
        window = _int_param(request, "window_days", 14, 1, 365)
        return Response(effectiveness(tenant=self.tenant, playbook=self.get_playbook(), window_days=window))


class PlaybookBacktestView(PlaybookObjectMixin, TenantAPIView):
    throttle_classes = [BacktestThrottle]

    @extend_schema(
        parameters=[BacktestQuerySerializer],
        responses={200: BacktestOutSerializer, 400: BAD_REQUEST, 404: NOT_FOUND, 429: TOO_MANY},
    )
    def get(self, request: Request, playbook_id: str) -> Response:
        days = _int_param(request, "days", 14, 1, 90)
        window = _int_param(request, "window_days", self.tenant.horizon_days, 1, 365)
        playbook = self.get_playbook()
        try:
            result = playbooks.playbook_backtest(
                tenant=self.tenant, trigger=playbook.trigger, days=days, window_days=window
            )
        except ConditionError as exc:
            _raise_400(exc)
            raise
        return Response(result)


# ---- outreach ----------------------------------------------------------------------------------


class OutreachFilterSerializer(QuerySerializer):
    playbook = serializers.UUIDField(required=False)
    campaign = serializers.UUIDField(required=False)
    status = serializers.ChoiceField(choices=Outreach.Status.values, required=False)
    customer = serializers.CharField(required=False, max_length=255, trim_whitespace=False)


def outreach_data(outreach: Outreach) -> dict[str, Any]:
    return {
        "id": str(outreach.pk),
        "customer": outreach.customer.external_id,
        "playbook": str(outreach.playbook_id) if outreach.playbook_id else None,
        "campaign": str(outreach.campaign_id) if outreach.campaign_id else None,
        "status": outreach.status,
        "holdout": outreach.holdout,
        "triggered_at": outreach.triggered_at.isoformat(),
        "sent_at": outreach.sent_at.isoformat() if outreach.sent_at else None,
        "title": outreach.title,
    }


class OutreachListView(TenantAPIView):
    queryset = Outreach.objects.none()
    pagination_class = TriggeredNewestFirst

    def safely_get_queryset(self, queryset: QuerySet) -> QuerySet:
        filters = OutreachFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.outreach_list(tenant=self.tenant, **filters.validated_data)

    @extend_schema(
        operation_id="v1_outreach_list",
        parameters=[OutreachFilterSerializer],
        responses={200: OutreachOutSerializer(many=True), 400: BAD_REQUEST},
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([outreach_data(o) for o in page])


# ---- campaigns ---------------------------------------------------------------------------------


class CampaignInputSerializer(serializers.Serializer):
    name = StrictCharField(max_length=200)
    audience = ConditionField()
    action = ActionField()
    send_at = serializers.DateTimeField()
    holdout_percent = StrictIntegerField(
        min_value=HOLDOUT_PERCENT.lo, max_value=HOLDOUT_PERCENT.hi, default=10
    )

    def validate_audience(self, value: Any) -> Any:
        return _condition_field(value, "audience")

    def validate_action(self, value: Any) -> dict[str, Any]:
        return _action_field(value, "action")


def campaign_data(campaign: Campaign, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "id": str(campaign.pk),
        "name": campaign.name,
        "audience": campaign.audience,
        "audience_text": _text(campaign.audience, "audience"),
        "action": campaign.action,
        "send_at": campaign.send_at.isoformat(),
        "holdout_percent": campaign.holdout_percent,
        "status": campaign.status,
        "sent_at": campaign.sent_at.isoformat() if campaign.sent_at else None,
        "audience_size": campaign.audience_size,
        "counts": counts,
    }


class CampaignListView(TenantAPIView):
    queryset = Campaign.objects.none()
    serializer_class = CampaignInputSerializer
    pagination_class = NewestFirst

    @extend_schema(operation_id="v1_campaigns_list", responses=CampaignOutSerializer(many=True))
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        counts = selectors.outreach_status_counts(tenant=self.tenant, campaign_ids=[c.pk for c in page])
        return self.get_paginated_response([campaign_data(c, counts[str(c.pk)]) for c in page])

    @extend_schema(request=CampaignInputSerializer, responses={201: CampaignOutSerializer, 400: BAD_REQUEST})
    def post(self, request: Request) -> Response:
        serializer = CampaignInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            campaign = campaign_sends.campaign_create(tenant=self.tenant, data=serializer.validated_data)
        except ConditionError as exc:
            _raise_400(exc)
        return Response(campaign_data(campaign, {}), status=status.HTTP_201_CREATED)


class CampaignObjectMixin(TenantAPIView):
    queryset = Campaign.objects.none()

    def get_campaign(self) -> Campaign:
        campaign = selectors.campaign_get(tenant=self.tenant, campaign_id=self.kwargs["campaign_id"])
        if campaign is None:
            raise Http404
        return campaign


class CampaignDetailView(CampaignObjectMixin, TenantAPIView):
    @extend_schema(responses={200: CampaignOutSerializer, 404: NOT_FOUND})
    def get(self, request: Request, campaign_id: str) -> Response:
        campaign = self.get_campaign()
        counts = selectors.outreach_status_counts(tenant=self.tenant, campaign_ids=[campaign.pk])
        return Response(campaign_data(campaign, counts[str(campaign.pk)]))


class CampaignEffectivenessView(CampaignObjectMixin, TenantAPIView):
    @extend_schema(
        parameters=[WINDOW_DAYS],
        responses={200: EffectivenessOutSerializer, 400: BAD_REQUEST, 404: NOT_FOUND},
    )
    def get(self, request: Request, campaign_id: str) -> Response:
        window = _int_param(request, "window_days", 14, 1, 365)
        return Response(effectiveness(tenant=self.tenant, campaign=self.get_campaign(), window_days=window))


# ---- incidents ---------------------------------------------------------------------------------


class IncidentInputSerializer(serializers.Serializer):
    component = StrictCharField(max_length=100)
    title = StrictCharField(max_length=200)
    affected = ConditionField()
    notice = ActionField()
    follow_up = ActionField(required=False, allow_null=True)
    overrides_budget = StrictBooleanField(default=True)

    def validate_affected(self, value: Any) -> Any:
        return _condition_field(value, "affected")

    def validate_notice(self, value: Any) -> dict[str, Any]:
        return _action_field(value, "notice")

    def validate_follow_up(self, value: Any) -> dict[str, Any] | None:
        return None if value is None else _action_field(value, "follow_up")


def incident_data(incident: Incident, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "id": str(incident.pk),
        "component": incident.component,
        "title": incident.title,
        "affected": incident.affected,
        "affected_text": _text(incident.affected, "affected"),
        "notice": incident.notice,
        "follow_up": incident.follow_up,
        "overrides_budget": incident.overrides_budget,
        "status": incident.status,
        "opened_at": incident.opened_at.isoformat(),
        "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
        "counts": counts,
        "detection": incident.detection,
    }


class IncidentFilterSerializer(QuerySerializer):
    status = serializers.ChoiceField(choices=Incident.Status.values, required=False)


class IncidentListView(TenantAPIView):
    queryset = Incident.objects.none()
    serializer_class = IncidentInputSerializer
    pagination_class = OpenedNewestFirst

    def safely_get_queryset(self, queryset: QuerySet) -> QuerySet:
        filters = IncidentFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        if "status" in filters.validated_data:
            queryset = queryset.filter(status=filters.validated_data["status"])
        return queryset

    @extend_schema(
        operation_id="v1_incidents_list",
        parameters=[IncidentFilterSerializer],
        responses={200: IncidentOutSerializer(many=True), 400: BAD_REQUEST},
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        counts = selectors.outreach_status_counts(tenant=self.tenant, incident_ids=[i.pk for i in page])
        return self.get_paginated_response([incident_data(i, counts[str(i.pk)]) for i in page])

    @extend_schema(request=IncidentInputSerializer, responses={201: IncidentOutSerializer, 400: BAD_REQUEST})
    def post(self, request: Request) -> Response:
        serializer = IncidentInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            incident, _ = incidents.incident_open(tenant=self.tenant, data=serializer.validated_data)
        except ConditionError as exc:
            _raise_400(exc)
        counts = selectors.outreach_status_counts(tenant=self.tenant, incident_ids=[incident.pk])
        return Response(incident_data(incident, counts[str(incident.pk)]), status=status.HTTP_201_CREATED)


class IncidentObjectMixin(TenantAPIView):
    queryset = Incident.objects.none()

    def get_incident(self) -> Incident:
        incident = selectors.incident_get(tenant=self.tenant, incident_id=self.kwargs["incident_id"])
        if incident is None:
            raise Http404
        return incident


class IncidentDetailView(IncidentObjectMixin, TenantAPIView):
    @extend_schema(responses={200: IncidentOutSerializer, 404: NOT_FOUND})
    def get(self, request: Request, incident_id: str) -> Response:
        incident = self.get_incident()
        counts = selectors.outreach_status_counts(tenant=self.tenant, incident_ids=[incident.pk])
        return Response(incident_data(incident, counts[str(incident.pk)]))


class IncidentResolveView(IncidentObjectMixin, TenantAPIView):
    @extend_schema(request=None, responses={200: IncidentOutSerializer, 404: NOT_FOUND, 409: CONFLICT})
    def post(self, request: Request, incident_id: str) -> Response:
        incident = self.get_incident()
        changed, _ = incidents.incident_resolve(tenant=self.tenant, incident=incident)
        if not changed:
            return Response({"detail": "The incident is not open."}, status=status.HTTP_409_CONFLICT)
        incident = self.get_incident()
        counts = selectors.outreach_status_counts(tenant=self.tenant, incident_ids=[incident.pk])
        return Response(incident_data(incident, counts[str(incident.pk)]))


class IncidentConfirmView(IncidentObjectMixin, TenantAPIView):
    @extend_schema(request=None, responses={200: IncidentOutSerializer, 404: NOT_FOUND, 409: NOT_SUSPECTED})
    def post(self, request: Request, incident_id: str) -> Response:
        changed, _ = monitoring.incident_confirm(tenant=self.tenant, incident=self.get_incident())
        if not changed:
            return Response({"detail": "The incident is not suspected."}, status=status.HTTP_409_CONFLICT)
        incident = self.get_incident()
        counts = selectors.outreach_status_counts(tenant=self.tenant, incident_ids=[incident.pk])
        return Response(incident_data(incident, counts[str(incident.pk)]))


class IncidentDismissView(IncidentObjectMixin, TenantAPIView):
    @extend_schema(request=None, responses={200: IncidentOutSerializer, 404: NOT_FOUND, 409: NOT_SUSPECTED})
    def post(self, request: Request, incident_id: str) -> Response:
        if not monitoring.incident_dismiss(tenant=self.tenant, incident=self.get_incident()):
            return Response({"detail": "The incident is not suspected."}, status=status.HTTP_409_CONFLICT)
        incident = self.get_incident()
        counts = selectors.outreach_status_counts(tenant=self.tenant, incident_ids=[incident.pk])
        return Response(incident_data(incident, counts[str(incident.pk)]))
