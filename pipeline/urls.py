from django.urls import path

from pipeline import views

app_name = "pipeline"

urlpatterns = [
    path("t/<slug:tenant_slug>/runs/now/", views.run_now, name="run_now"),
]
