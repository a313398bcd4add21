"""Deliberately broken views, to prove the isolation probe notices leaks."""

from django.http import HttpResponse
from django.urls import path

from proactive.models import Customer


def leaky_customers(request):
    return HttpResponse(", ".join(Customer.objects.unscoped().values_list("name", flat=True)))


def leaky_rename(request):
    if request.method == "POST":
        Customer.objects.unscoped().update(name="renamed")
    return HttpResponse("ok")


urlpatterns = [path("leaky/customers", leaky_customers), path("leaky/rename", leaky_rename)]
