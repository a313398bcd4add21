"""`GET /api/v1/scores` pages through every scored customer exactly once, ties included."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from django.db import connection

from proactive.models import Customer, RiskScore
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db

N = 25_000
SCORES = (0.9, 0.5, 0.25, 0.1, 0.0)  # a handful of values: thousands of customers share each


def _scored_tenant(tenant, n: int, prefix: str = "c") -> None:
    """n customers and their scores, inserted set-based (one statement each)."""
    at = datetime(2025, 6, 1, tzinfo=UTC)
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT INTO {Customer._meta.db_table} (tenant_id, external_id, name, email, attributes, "  # noqa: S608
            "created_at, updated_at) SELECT %s, %s || g, '', '', '{}'::jsonb, %s, %s "
            "FROM generate_series(1, %s) g",
            [tenant.pk, prefix, at, at, n],
        )
        cur.execute(
            f"INSERT INTO {RiskScore._meta.db_table} (tenant_id, customer_id, score, scored_at, reasons, "  # noqa: S608
            f"rule_based) SELECT c.tenant_id, c.id, (%s::float8[])[1 + (hashint8(c.id) & 2147483647) %% %s], "
            f"%s, '[]'::jsonb, false FROM {Customer._meta.db_table} c WHERE c.tenant_id = %s",
            [list(SCORES), len(SCORES), at, tenant.pk],
        )


def test_every_customer_exactly_once_however_many_share_a_score(tenant, api):
    _scored_tenant(tenant, N)
    _scored_tenant(TenantFactory(), 50, prefix="other")  # another tenant's scores never show
    seen: list[str] = []
    scores: list[float] = []
    url, pages = "/api/v1/scores?limit=1000", 0
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.content
        body = response.json()
        assert len(body["results"]) <= 1000
        seen += [r["customer"] for r in body["results"]]
        scores += [r["score"] for r in body["results"]]
        url, pages = body["next"], pages + 1
    assert pages == N // 1000
    assert len(seen) == len(set(seen)) == N
    assert set(seen) == {f"c{i}" for i in range(1, N + 1)}
    assert scores == sorted(scores, reverse=True)
    per_value = {v: scores.count(v) for v in SCORES}
    assert min(per_value.values()) > 1000, per_value  # more ties per value than DRF's offset cut-off


def test_ties_are_ordered_by_a_stable_key_and_limit_is_capped(tenant, api):
    _scored_tenant(tenant, 1200)
    first = api.get("/api/v1/scores?limit=5000").json()
    assert len(first["results"]) == 1000  # limit is at most 1000
    again = api.get("/api/v1/scores?limit=1000").json()
    assert [r["customer"] for r in first["results"]] == [r["customer"] for r in again["results"]]
    ids = dict(Customer.objects.for_tenant(tenant).values_list("external_id", "pk"))
    keys = [(r["score"], ids[r["customer"]]) for r in first["results"]]
    assert keys == sorted(keys, reverse=True)
    rest = api.get(first["next"]).json()
    assert len(rest["results"]) == 200 and rest["next"] is None


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        base64.urlsafe_b64encode(b'["x", 1]').decode(),
        base64.urlsafe_b64encode(b"[0.5, 1.5]").decode(),
        base64.urlsafe_b64encode(b"[NaN, 1]").decode(),
        "\u00e9t\u00e9",
    ],
)
def test_a_malformed_cursor_is_a_400(tenant, api, cursor):
    _scored_tenant(tenant, 3)
    response = api.get("/api/v1/scores", {"cursor": cursor})
    assert response.status_code == 400
    assert "cursor" in response.json()["detail"].lower()


def test_a_repeated_cursor_is_a_400(tenant, api):
    assert api.get("/api/v1/scores?cursor=a&cursor=b").status_code == 400


@pytest.mark.parametrize("query", ["active=null", "active=yes", "active=true&active=true"])
def test_the_models_active_filter_takes_true_or_false_once(tenant, api, query):
    response = api.get(f"/api/v1/models?{query}")
    assert response.status_code == 400
    assert list(response.json()) == ["active"]


@pytest.mark.parametrize("query", ["active=1", "active=true", "active=0", "active=false", "active="])
def test_the_models_active_filter_keeps_what_earlier_clients_sent(tenant, api, query):
    assert api.get(f"/api/v1/models?{query}").status_code == 200


def test_the_models_active_filter_false_lists_every_model(tenant, api):
    assert api.get("/api/v1/models?active=false").status_code == 200
