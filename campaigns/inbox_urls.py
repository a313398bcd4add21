"""The end-customer inbox API (mounted under /api/v1/): plain Django views, no server key."""

from django.urls import path

from campaigns.inbox.views import inbox_event, inbox_list

urlpatterns = [
    path("inbox", inbox_list, name="inbox"),
    path("inbox/<uuid:outreach_id>/events", inbox_event, name="inbox_event"),
]
