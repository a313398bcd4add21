from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("t/<slug:tenant_slug>/keys/", views.keys, name="keys"),
    path("t/<slug:tenant_slug>/keys/new/", views.key_create, name="key_create"),
    path("t/<slug:tenant_slug>/keys/rotate/", views.keys_rotate, name="keys_rotate"),
    path("t/<slug:tenant_slug>/keys/<str:prefix>/revoke/", views.key_revoke, name="key_revoke"),
]
