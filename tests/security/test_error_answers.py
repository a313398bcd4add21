"""Errors on API paths are JSON (500s included); pages get styled error pages; secrets are not cached."""

from __future__ import annotations

from unittest import mock

from django.test import Client


def test_an_unknown_api_path_is_a_json_404(db):
    response = Client().get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_an_unhandled_error_in_the_api_is_a_json_500(api):
    api.raise_request_exception = False
    with mock.patch("accounts.api.tenant_settings", side_effect=RuntimeError("boom")):
        response = api.get("/api/v1/tenant")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert "boom" not in response.content.decode()
    assert response.json()["detail"].startswith("Something went wrong")


def test_an_unhandled_error_on_a_page_is_the_styled_500_page(viewer_client):
    viewer_client.raise_request_exception = False
    with mock.patch("accounts.views.redirect", side_effect=RuntimeError("boom")):
        response = viewer_client.get("/")
    assert response.status_code == 500
    page = response.content.decode()
    assert "Something went wrong" in page and "boom" not in page


def test_a_missing_page_is_the_styled_404_page(viewer_client):
    response = viewer_client.get("/t/no-such-tenant/")
    assert response.status_code == 404
    assert '<section class="card narrow">' in response.content.decode()


def test_the_keys_page_is_never_cached(admin_client_for, tenant):
    response = admin_client_for.get(f"/t/{tenant.slug}/keys/")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
