"""Every tenant HTML page, under /t/<tenant>/ (one namespace: `dashboard:`)."""

from django.urls import path, register_converter
from django.urls.converters import PathConverter

from dashboard import builder_views, incident_views, playbook_views, queue_views, views, webhook_views


class ExternalIdConverter(PathConverter):
    """A tenant's external id as it was sent: any characters, newlines included (`path` stops at
    one, so a customer "line1\nline2" broke every page that links to it)."""

    regex = r"[\s\S]+"


register_converter(ExternalIdConverter, "external_id")

app_name = "dashboard"

T = "t/<slug:tenant_slug>/"

urlpatterns = [
    path(T, views.overview, name="overview"),
    path(T + "model/", views.model_detail, name="model"),
    path(T + "customers/", views.customer_list, name="customers"),
    path(T + "customers/<external_id:external_id>/", views.customer_detail, name="customer"),
    path(T + "runs/", views.run_list, name="runs"),
    path(T + "runs/<int:run_id>/", views.run_detail, name="run"),
    path(T + "fatigue/", views.fatigue, name="fatigue"),
    path(T + "playbooks/", playbook_views.playbook_list, name="playbook_list"),
    path(T + "playbooks/new/", builder_views.playbook_new, name="playbook_new"),
    path(T + "playbooks/<uuid:playbook_id>/edit/", builder_views.playbook_edit, name="playbook_edit"),
    path(T + "builder/tree/", builder_views.builder_tree, name="builder_tree"),
    path(T + "builder/panel/", builder_views.builder_panel, name="builder_panel"),
    path(T + "campaigns/new/", builder_views.campaign_new, name="campaign_new"),
    path(T + "incidents/", incident_views.incident_list, name="incident_list"),
    path(T + "incidents/new/", builder_views.incident_new, name="incident_new"),
    path(T + "incidents/<uuid:incident_id>/", incident_views.incident_detail, name="incident_detail"),
    path(T + "incidents/<uuid:incident_id>/edit/", builder_views.incident_edit, name="incident_edit"),
    path(
        T + "incidents/<uuid:incident_id>/<slug:action>/",
        incident_views.incident_action,
        name="incident_action",
    ),
    path(T + "playbooks/<uuid:playbook_id>/", playbook_views.playbook_detail, name="playbook_detail"),
    path(
        T + "playbooks/<uuid:playbook_id>/backtest/",
        playbook_views.playbook_backtest_fragment,
        name="playbook_backtest",
    ),
    path(T + "campaigns/", playbook_views.campaign_list, name="campaign_list"),
    path(T + "campaigns/<uuid:campaign_id>/", playbook_views.campaign_detail, name="campaign_detail"),
    path(T + "queue/", queue_views.queue_page, name="queue"),
    path(T + "queue/claim-next/", queue_views.claim_next, name="claim_next"),
    path(T + "queue/bulk/", queue_views.bulk, name="bulk"),
    path(T + "queue/<uuid:outreach_id>/", queue_views.item, name="item"),
    path(T + "queue/<uuid:outreach_id>/preview/", queue_views.item_preview, name="item_preview"),
    path(T + "queue/<uuid:outreach_id>/claim/", queue_views.item_claim, name="item_claim"),
    path(T + "queue/<uuid:outreach_id>/release/", queue_views.item_release, name="item_release"),
    path(T + "queue/<uuid:outreach_id>/edit/", queue_views.item_edit, name="item_edit"),
    path(T + "queue/<uuid:outreach_id>/send/", queue_views.item_send, name="item_send"),
    path(T + "queue/<uuid:outreach_id>/reject/", queue_views.item_reject, name="item_reject"),
    path(T + "queue/<uuid:outreach_id>/snooze/", queue_views.item_snooze, name="item_snooze"),
    path(T + "webhooks/", webhook_views.webhook_list, name="webhooks"),
    path(T + "webhooks/<uuid:endpoint_id>/", webhook_views.webhook_detail, name="webhook_detail"),
    path(T + "webhooks/<uuid:endpoint_id>/toggle/", webhook_views.webhook_toggle, name="webhook_toggle"),
    path(T + "webhooks/<uuid:endpoint_id>/delete/", webhook_views.webhook_delete, name="webhook_delete"),
]
