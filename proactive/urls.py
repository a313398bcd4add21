from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


api_v1 = [
    path("", include("accounts.api_urls")),
    path("", include("proactive.api_urls")),
    path("", include("proactive.scoring.api_urls")),
    path("", include("campaigns.api_urls")),
    path("", include("campaigns.inbox_urls")),
    path("", include("webhooks.api_urls")),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include((api_v1, "api"))),
    path("ingest/segment/", include("proactive.segment_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("", include("accounts.urls")),
    path("", include("dashboard.urls")),
    path("", include("pipeline.urls")),
    path("", include("campaigns.insights_urls")),
    path("", include("campaigns.urls")),
    path("", include("demo.urls")),
]

admin.site.site_header = "Proactive administration"
admin.site.site_title = "Proactive admin"

handler400 = "proactive.errors.bad_request"
handler403 = "proactive.errors.permission_denied"
handler404 = "proactive.errors.page_not_found"
handler500 = "proactive.errors.server_error"
