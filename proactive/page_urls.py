from django.urls import path

from proactive import views

app_name = "proactive"

urlpatterns = [
    path("t/<slug:tenant_slug>/", views.overview, name="overview"),
    path("t/<slug:tenant_slug>/model/", views.model_detail, name="model"),
    path("t/<slug:tenant_slug>/customers/", views.customer_list, name="customers"),
    path("t/<slug:tenant_slug>/customers/<path:external_id>/", views.customer_detail, name="customer"),
    path("t/<slug:tenant_slug>/runs/", views.run_list, name="runs"),
    path("t/<slug:tenant_slug>/runs/<int:run_id>/", views.run_detail, name="run"),
    path("t/<slug:tenant_slug>/fatigue/", views.fatigue, name="fatigue"),
]
