from django.urls import path

from accounts import api

urlpatterns = [
    path("tenant", api.TenantSettingsView.as_view(), name="tenant"),
]
