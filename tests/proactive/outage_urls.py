"""A view whose database went away mid-request (the test stands in for PostgreSQL restarting)."""

from django.db import OperationalError
from django.urls import path


def lost_connection(request):
    raise OperationalError("server closed the connection unexpectedly")


urlpatterns = [path("api/v1/outage", lost_connection), path("page/outage", lost_connection)]
