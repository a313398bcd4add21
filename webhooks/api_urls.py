from django.urls import path

from webhooks import api

urlpatterns = [
    path("webhooks", api.WebhookListView.as_view(), name="webhooks"),
    path("webhooks/<uuid:webhook_id>", api.WebhookDetailView.as_view(), name="webhook"),
]
