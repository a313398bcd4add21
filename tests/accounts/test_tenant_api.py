import pytest
from django.test import Client

from accounts.services import api_key_create, api_key_revoke


def test_get_returns_the_contract_shape(api):
    response = api.get("/api/v1/tenant")
    assert response.status_code == 200
    assert response.json() == {
        "slug": "acme",
        "name": "Acme",
        "timezone": "UTC",
        "contact_signals": ["support.contact"],
        "prediction": {
            "target": "contact",
            "activity_signals": ["session.*"],
            "horizon_days": 14,
            "numeric_properties": [],
        },
        "contact_budget": {"max_messages": 2, "per_days": 7},
        "allowed_origins": [],
        "monitoring": {"signals": ["error.*"], "segment_by": None, "auto_open": False},
    }


def test_patch_merges_nested_settings(api, tenant):
    response = api.patch(
        "/api/v1/tenant",
        {"prediction": {"horizon_days": 30}, "allowed_origins": ["https://app.acme.test"]},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["prediction"] == {
        "target": "contact",
        "activity_signals": ["session.*"],
        "horizon_days": 30,
        "numeric_properties": [],
    }
    tenant.refresh_from_db()
    assert tenant.horizon_days == 30 and tenant.allowed_origins == ["https://app.acme.test"]


def test_numeric_properties_are_declared_as_signal_dot_property(api, tenant):
    declared = ["purchase.amount", "onboarding.step_completed.seconds"]
    response = api.patch(
        "/api/v1/tenant", {"prediction": {"numeric_properties": declared}}, content_type="application/json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["prediction"]["numeric_properties"] == declared
    tenant.refresh_from_db()
    assert tenant.numeric_properties == declared
    for bad, says in (
        (["purchase"], "is not SIGNAL.PROPERTY"),
        (["purchase.amount.usd!"], "is not SIGNAL.PROPERTY"),
        (["Purchase.amount"], "is not SIGNAL.PROPERTY"),
        (["purchase.amount", "purchase.amount"], "declared once"),
        ([f"s{i}.v" for i in range(11)], "no more than 10"),
        ("purchase.amount", "Expected a list"),
    ):
        response = api.patch(
            "/api/v1/tenant", {"prediction": {"numeric_properties": bad}}, content_type="application/json"
        )
        assert response.status_code == 400, bad
        assert says in str(response.json()["prediction"]["numeric_properties"]), response.json()
    tenant.refresh_from_db()
    assert tenant.numeric_properties == declared


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"prediction": {"horizon_days": 0}}, "prediction"),
        ({"prediction": {"target": "churn"}}, "prediction"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"contact_signals": ["Support Contact"]}, "contact_signals"),
        ({"contact_budget": {"per_days": "often"}}, "contact_budget"),
        ({"allowed_origins": ["javascript:alert(1)"]}, "allowed_origins"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_a_bad_value_is_a_400_naming_it(api, tenant, patch, field):
    response = api.patch("/api/v1/tenant", patch, content_type="application/json")
    assert response.status_code == 400
    assert field in response.json()
    tenant.refresh_from_db()
    assert tenant.horizon_days == 14


def test_a_malformed_body_is_a_400(api):
    response = api.patch("/api/v1/tenant", "{not json", content_type="application/json")
    assert response.status_code == 400


@pytest.mark.parametrize(
    "header", [None, "Bearer sk_wrong", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer sk_00000000_" + "x" * 40]
)
def test_a_wrong_or_missing_key_is_401(db, header):
    client = Client(HTTP_AUTHORIZATION=header) if header else Client()
    assert client.get("/api/v1/tenant").status_code == 401


def test_a_revoked_key_is_401(tenant):
    new = api_key_create(tenant=tenant)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {new.secret}")
    assert client.get("/api/v1/tenant").status_code == 200
    api_key_revoke(tenant=tenant, key=new.key)
    assert client.get("/api/v1/tenant").status_code == 401


def test_a_logged_in_user_without_a_key_is_refused(admin_client_for):
    assert admin_client_for.get("/api/v1/tenant").status_code in (401, 403)
