from django.urls import path

from campaigns import page_views

app_name = "playbooks"

urlpatterns = [
    path("t/<slug:tenant_slug>/playbooks/", page_views.playbook_list, name="list"),
    path("t/<slug:tenant_slug>/playbooks/<uuid:playbook_id>/", page_views.playbook_detail, name="detail"),
    path(
        "t/<slug:tenant_slug>/playbooks/<uuid:playbook_id>/backtest/",
        page_views.playbook_backtest_fragment,
        name="backtest",
    ),
    path("t/<slug:tenant_slug>/campaigns/", page_views.campaign_list, name="campaign_list"),
    path(
        "t/<slug:tenant_slug>/campaigns/<uuid:campaign_id>/",
        page_views.campaign_detail,
        name="campaign_detail",
    ),
]
