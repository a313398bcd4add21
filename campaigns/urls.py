from django.urls import path

from campaigns import views

app_name = "campaigns"

urlpatterns = [
    path("t/<slug:tenant_slug>/queue/", views.queue_page, name="queue"),
    path("t/<slug:tenant_slug>/queue/claim-next/", views.claim_next, name="claim_next"),
    path("t/<slug:tenant_slug>/queue/bulk/", views.bulk, name="bulk"),
    path("t/<slug:tenant_slug>/queue/<uuid:outreach_id>/", views.item, name="item"),
    path("t/<slug:tenant_slug>/queue/<uuid:outreach_id>/preview/", views.item_preview, name="item_preview"),
    path("t/<slug:tenant_slug>/queue/<uuid:outreach_id>/claim/", views.item_claim, name="item_claim"),
    path("t/<slug:tenant_slug>/queue/<uuid:outreach_id>/release/", views.item_release, name="item_release"),
    path("t/<slug:tenant_slug>/queue/<uuid:outreach_id>/edit/", views.item_edit, name="item_edit"),
    path("t/<slug:tenant_slug>/queue/<uuid:outreach_id>/send/", views.item_send, name="item_send"),
    path("t/<slug:tenant_slug>/queue/<uuid:outreach_id>/reject/", views.item_reject, name="item_reject"),
    path("t/<slug:tenant_slug>/queue/<uuid:outreach_id>/snooze/", views.item_snooze, name="item_snooze"),
    path("demo/app/", views.demo_app, name="demo_app"),
    path("email/unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
