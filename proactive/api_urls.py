from django.urls import path

from proactive import api

urlpatterns = [
    path("customers/batch", api.CustomersBatchView.as_view(), name="customers_batch"),
    path("signals/batch", api.SignalsBatchView.as_view(), name="signals_batch"),
    path("customers/<path:external_id>", api.CustomerDetailView.as_view(), name="customer_detail"),
]
