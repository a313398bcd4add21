from django.urls import path

from proactive import views

app_name = "proactive"

urlpatterns = [
    path("t/<slug:tenant_slug>/", views.overview, name="overview"),
]
