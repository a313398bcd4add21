"""Each input class from the audit that used to answer 500, through its real interface."""

from __future__ import annotations

import json

import jwt
from django.test import Client
from django.utils import timezone

from tests.factories import CustomerFactory, PlaybookFactory


def _post(api, url, payload):
    api.raise_request_exception = False
    return api.post(
        url,
        data=payload if isinstance(payload, str) else json.dumps(payload),
        content_type="application/json",
    )


def test_numbers_out_of_float_range_are_refused_per_record(api):
    body = (
        '{"signals": [{"id": "s1", "customer": "c1", "name": "a.b", "timestamp": "2025-01-01T00:00:00Z",'
        ' "properties": {"n": 1e400}}]}'
    )
    response = _post(api, "/api/v1/signals/batch", body)
    assert response.status_code in (200, 400), response.content
    body = '{"customers": [{"external_id": "c1", "attributes": {"n": 1e400}}]}'
    assert _post(api, "/api/v1/customers/batch", body).status_code in (200, 400)


def test_lone_surrogates_in_customers_batch_are_refused(api):
    body = '{"customers": [{"external_id": "c\\ud800", "name": "\\udfff"}, {"external_id": "ok"}]}'
    response = _post(api, "/api/v1/customers/batch", body)
    assert response.status_code in (200, 400), response.content
    if response.status_code == 200:
        assert response.json()["created"] == 1 and len(response.json()["errors"]) == 1


def test_a_4000_digit_attribute_does_not_break_numeric_conditions(api, tenant):
    assert (
        _post(
            api,
            "/api/v1/customers/batch",
            {
                "customers": [
                    {
                        "external_id": "huge",
                        "attributes": {"seats": int("9" * 4000) if False else "9" * 4000},
                    },
                    {"external_id": "small", "attributes": {"seats": 5}},
                ]
            },
        ).status_code
        == 200
    )
    huge = '{"customers": [{"external_id": "huge2", "attributes": {"seats": ' + "9" * 4000 + "}}]}"
    assert _post(api, "/api/v1/customers/batch", huge).status_code in (200, 400)
    playbook = PlaybookFactory(tenant=tenant, trigger={"metric": "attribute.seats", "op": "gt", "value": 3})
    response = _post(api, f"/api/v1/playbooks/{playbook.pk}/preview", {})
    assert response.status_code == 200, response.content
    assert "small" in response.json()["sample"]


def test_an_external_id_with_a_newline_does_not_break_the_customers_page(tenant, viewer_client):
    CustomerFactory(tenant=tenant, external_id="line1\nline2")
    CustomerFactory(tenant=tenant, external_id="a/b?c#d")
    viewer_client.raise_request_exception = False
    response = viewer_client.get(f"/t/{tenant.slug}/customers/")
    assert response.status_code == 200
    assert f"/t/{tenant.slug}/customers/line1%0Aline2/" in response.content.decode()  # listed, linked
    assert viewer_client.get(f"/t/{tenant.slug}/customers/line1%0Aline2/").status_code == 200


def test_an_inbox_token_whose_sub_holds_nul_is_refused(tenant):
    now = int(timezone.now().timestamp())
    token = jwt.encode({"sub": "a\x00b", "exp": now + 600}, tenant.identity_secret, algorithm="HS256")
    client = Client(HTTP_X_PUBLISHABLE_KEY=tenant.publishable_key, HTTP_AUTHORIZATION=f"Bearer {token}")
    client.raise_request_exception = False
    response = client.get("/api/v1/inbox")
    assert 400 <= response.status_code < 500


def test_a_30mb_body_is_refused_before_it_is_parsed(api):
    response = _post(api, "/api/v1/playbooks", '{"name": "' + "a" * (30 * 1024 * 1024) + '"}')
    assert response.status_code == 413


def test_options_answers_on_every_api_view(api, tenant):
    playbook = PlaybookFactory(tenant=tenant)
    api.raise_request_exception = False
    for url in [
        "/api/v1/customers/batch",
        "/api/v1/signals/batch",
        f"/api/v1/playbooks/{playbook.pk}/preview",
    ]:
        assert api.options(url).status_code == 200, url


def test_a_crafted_cursor_is_a_404(api):
    api.raise_request_exception = False
    assert api.get("/api/v1/playbooks", {"cursor": "%%%"}).status_code < 500
    for cursor in ["cD0xMjM=", "cD1ub3QtYS11dWlk", "cD0lMDA="]:
        assert api.get("/api/v1/playbooks", {"cursor": cursor}).status_code == 404
    for cursor in ["cD1ub3QtYS1udW1iZXI=", "cD0lMDA="]:  # p=not-a-number, p=%00
        # Scores page by keyset: a cursor that is not one of its own is a 400 naming the cursor.
        assert api.get("/api/v1/scores", {"cursor": cursor}).status_code == 400


def test_nul_in_a_key_name_and_page_search_is_a_400(tenant, admin_client_for):
    admin_client_for.raise_request_exception = False
    assert admin_client_for.post(f"/t/{tenant.slug}/keys/new/", {"name": "a\x00b"}).status_code == 400
    assert admin_client_for.get(f"/t/{tenant.slug}/customers/", {"q": "a\x00"}).status_code == 400
