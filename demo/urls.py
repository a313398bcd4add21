from django.urls import path

from demo.views import demo_app

app_name = "demo"

urlpatterns = [
    path("demo/app/", demo_app, name="app"),
]
