import pytest
from django.test import Client


@pytest.mark.urls("tests.proactive.outage_urls")
def test_a_lost_database_is_a_json_503_for_api_clients(db):
    response = Client(raise_request_exception=False).get("/api/v1/outage")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "nothing from this request was stored" in response.json()["detail"]


@pytest.mark.urls("tests.proactive.outage_urls")
def test_pages_keep_the_normal_error_handling(db):
    response = Client(raise_request_exception=False).get("/page/outage")
    assert response.status_code == 500
