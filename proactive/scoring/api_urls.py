from django.urls import path

from proactive.scoring import api

urlpatterns = [
    path("scores", api.ScoreListView.as_view(), name="scores"),
    path("models", api.ModelListView.as_view(), name="models"),
]
