from django.urls import path

from campaigns import insights_pages

app_name = "insights"

urlpatterns = [
    path("t/<slug:tenant_slug>/insights/", insights_pages.insight_list, name="list"),
    path(
        "t/<slug:tenant_slug>/insights/<uuid:insight_id>/playbook/",
        insights_pages.insight_playbook,
        name="playbook",
    ),
]
