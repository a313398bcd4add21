"""Preview and backtest budgets per tenant (API and pages share them) and the per-IP limit on
unknown publishable keys, all on a fixed clock (see test_rate_limits.py)."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import Membership
from accounts.rate_limits import BACKTEST_BUDGET, PREVIEW_BUDGET
from accounts.services import api_key_create
from campaigns.inbox import views as inbox_views
from tests.campaigns.inbox_fixtures import mint, private_cache  # noqa: F401
from tests.dashboard.test_builder import NESTED
from tests.dashboard.test_pages import client_for
from tests.factories import CustomerFactory, PlaybookFactory, TenantFactory

MID_MINUTE = 1_800_000_020.0  # 20 s into a minute: a test cannot straddle a window boundary


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    for limiter in (PREVIEW_BUDGET.limiter, BACKTEST_BUDGET.limiter, inbox_views.UNKNOWN_KEY_BUDGET.limiter):
        monkeypatch.setattr(limiter, "clock", lambda: MID_MINUTE)


def _api(tenant) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=tenant).secret}")


def test_the_api_preview_is_limited_per_tenant_with_retry_after(tenant, settings):
    settings.PREVIEW_RATE_LIMIT_PER_MINUTE = 2
    other = TenantFactory(slug="other")
    mine, theirs = PlaybookFactory(tenant=tenant), PlaybookFactory(tenant=other)
    api, second_key = _api(tenant), _api(tenant)
    url = f"/api/v1/playbooks/{mine.pk}/preview"
    assert [api.post(url).status_code for _ in range(2)] == [200, 200]
    limited = second_key.post(url)  # per tenant, not per key
    assert limited.status_code == 429
    assert limited["Content-Type"] == "application/json"
    assert "detail" in limited.json() and int(limited["Retry-After"]) == 40
    # Another tenant's budget is untouched.
    assert _api(other).post(f"/api/v1/playbooks/{theirs.pk}/preview").status_code == 200


def test_the_api_backtest_is_limited_per_tenant(tenant, settings):
    settings.BACKTEST_RATE_LIMIT_PER_MINUTE = 1
    other = TenantFactory(slug="other")
    mine, theirs = PlaybookFactory(tenant=tenant), PlaybookFactory(tenant=other)
    api = _api(tenant)
    url = f"/api/v1/playbooks/{mine.pk}/backtest?days=1"
    assert api.get(url).status_code == 200
    limited = api.get(url)
    assert limited.status_code == 429 and int(limited["Retry-After"]) == 40 and limited.json()["detail"]
    assert _api(other).get(f"/api/v1/playbooks/{theirs.pk}/backtest?days=1").status_code == 200


def test_the_builder_panel_shares_the_preview_budget_and_says_so(tenant, settings):
    settings.PREVIEW_RATE_LIMIT_PER_MINUTE = 2
    CustomerFactory(tenant=tenant)
    playbook = PlaybookFactory(tenant=tenant)
    assert _api(tenant).post(f"/api/v1/playbooks/{playbook.pk}/preview").status_code == 200
    client = client_for(tenant, Membership.Role.ADMIN)
    first = client.post("/t/acme/builder/panel/", NESTED, HTTP_HX_REQUEST="true").content.decode()
    assert 'id="match-count"' in first and "preview-throttled" not in first
    paused = client.post("/t/acme/builder/panel/", NESTED, HTTP_HX_REQUEST="true")
    assert paused.status_code == 200  # HTMX swaps it in
    text = paused.content.decode()
    assert 'id="preview-throttled"' in text and "40 seconds" in text and 'id="match-count"' not in text
    assert 'id="trigger-words"' in text  # the rest of the panel still renders


def test_the_page_backtest_counts_only_when_computed_and_says_when_limited(tenant, settings):
    settings.BACKTEST_RATE_LIMIT_PER_MINUTE = 1
    one, two = PlaybookFactory(tenant=tenant), PlaybookFactory(tenant=tenant)
    client = client_for(tenant, Membership.Role.VIEWER)
    url = "/t/acme/playbooks/{}/backtest/"
    assert client.get(url.format(one.pk), HTTP_HX_REQUEST="true").status_code == 200
    cached = client.get(url.format(one.pk), HTTP_HX_REQUEST="true")  # from the cache: free
    assert cached.status_code == 200 and b"backtest-throttled" not in cached.content
    limited = client.get(url.format(two.pk), HTTP_HX_REQUEST="true")
    assert limited.status_code == 200 and b'id="backtest-throttled"' in limited.content
    assert b"40 seconds" in limited.content and limited["Retry-After"] == "40"
    plain = client.get(url.format(two.pk))  # without HTMX: the status says it too
    assert plain.status_code == 429 and b'id="backtest-throttled"' in plain.content


def _inbox(key: str, ip: str, bearer: str = "x") -> int:
    return (
        Client(REMOTE_ADDR=ip)
        .get("/api/v1/inbox", HTTP_X_PUBLISHABLE_KEY=key, HTTP_AUTHORIZATION=f"Bearer {bearer}")
        .status_code
    )


def test_unknown_publishable_keys_are_limited_per_client_ip(tenant, settings):
    settings.INBOX_UNKNOWN_KEY_RATE_LIMIT_PER_MINUTE = 3
    CustomerFactory(tenant=tenant, external_id="u-1")
    scanner, neighbour = "203.0.113.7", "198.51.100.4"
    codes = [_inbox(f"pk_guess{i}", scanner) for i in range(5)]
    assert codes == [401, 401, 401, 429, 429]
    response = Client(REMOTE_ADDR=scanner).get("/api/v1/inbox", HTTP_X_PUBLISHABLE_KEY="nonsense")
    assert response.status_code == 429 and response["Retry-After"] == "40"
    assert response.json() == {"detail": "rate limit exceeded"}
    assert _inbox("pk_guess", neighbour) == 401  # another client has its own budget
    # A tenant's real key is never limited by the scanner, even from the scanner's address.
    token = mint(tenant.identity_secret, "u-1")
    assert _inbox(tenant.publishable_key, scanner, token) == 200
    assert _inbox(tenant.publishable_key, scanner, "bad-token") == 401  # a known key's errors do not count


def test_a_known_key_never_counts_against_the_unknown_key_budget(tenant, settings):
    settings.INBOX_UNKNOWN_KEY_RATE_LIMIT_PER_MINUTE = 1
    CustomerFactory(tenant=tenant, external_id="u-1")
    token = mint(tenant.identity_secret, "u-1")
    ip = "192.0.2.9"
    assert all(_inbox(tenant.publishable_key, ip, token) == 200 for _ in range(3))
    assert _inbox("pk_unknown", ip) == 401  # the first unknown key from here is still a 401
