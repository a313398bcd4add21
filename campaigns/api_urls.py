from django.urls import path

from campaigns import api, insights_api

urlpatterns = [
    path("playbooks", api.PlaybookListView.as_view(), name="playbooks"),
    path("playbooks/<uuid:playbook_id>", api.PlaybookDetailView.as_view(), name="playbook"),
    path("playbooks/<uuid:playbook_id>/preview", api.PlaybookPreviewView.as_view(), name="playbook_preview"),
    path(
        "playbooks/<uuid:playbook_id>/effectiveness",
        api.PlaybookEffectivenessView.as_view(),
        name="playbook_effectiveness",
    ),
    path(
        "playbooks/<uuid:playbook_id>/backtest", api.PlaybookBacktestView.as_view(), name="playbook_backtest"
    ),
    path("insights", insights_api.InsightListView.as_view(), name="insights"),
    path(
        "insights/<uuid:insight_id>/playbook",
        insights_api.InsightPlaybookView.as_view(),
        name="insight_playbook",
    ),
    path("outreach", api.OutreachListView.as_view(), name="outreach"),
    path("campaigns", api.CampaignListView.as_view(), name="campaigns"),
    path("campaigns/<uuid:campaign_id>", api.CampaignDetailView.as_view(), name="campaign"),
    path(
        "campaigns/<uuid:campaign_id>/effectiveness",
        api.CampaignEffectivenessView.as_view(),
        name="campaign_effectiveness",
    ),
    path("incidents", api.IncidentListView.as_view(), name="incidents"),
    path("incidents/<uuid:incident_id>", api.IncidentDetailView.as_view(), name="incident"),
    path("incidents/<uuid:incident_id>/resolve", api.IncidentResolveView.as_view(), name="incident_resolve"),
    path("incidents/<uuid:incident_id>/confirm", api.IncidentConfirmView.as_view(), name="incident_confirm"),
    path("incidents/<uuid:incident_id>/dismiss", api.IncidentDismissView.as_view(), name="incident_dismiss"),
]
