"""Public outreach pages that need no login (the email unsubscribe link)."""

from django.urls import path

from campaigns.unsubscribe import unsubscribe

app_name = "campaigns"

urlpatterns = [
    path("email/unsubscribe/<str:token>/", unsubscribe, name="unsubscribe"),
]
