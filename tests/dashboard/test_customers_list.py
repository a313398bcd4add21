"""The Customers page: keyset pages over every customer, risk band / plan / pending-outreach
filters combined with search, the empty state and hand-edited URLs."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Membership
from campaigns.models import Outreach
from dashboard import selectors
from proactive.models import Customer, RiskScore
from tests.factories import CustomerFactory, MembershipFactory, OutreachFactory, TenantFactory

PAGE = 7
PLANS = ["pro", "starter", None]
ROW = re.compile(r'href="/t/acme/customers/([^"/]+)/"')


@pytest.fixture(autouse=True)
def small_pages(monkeypatch):
    monkeypatch.setattr("dashboard.selectors.CUSTOMER_PAGE_SIZE", PAGE)
    monkeypatch.setattr("dashboard.selectors.PAGE_CACHE_SECONDS", 0)


def score_of(i: int) -> float | None:
    """Every fourth customer unscored; the rest on few values, so many ties across page edges."""
    return None if i % 4 == 0 else [0.05, 0.15, 0.3, 0.3, 0.6, 0.9][i % 6]


@pytest.fixture
def world(tenant):
    now = timezone.now()
    customers = []
    for i in range(60):
        plan = PLANS[i % 3]
        c = CustomerFactory(
            tenant=tenant,
            external_id=f"c{i:03d}",
            name=f"{'Zed' if i % 2 else 'Amy'} {i}",
            attributes={"plan": plan} if plan else {},
        )
        customers.append(c)
        if (score := score_of(i)) is not None:
            RiskScore.objects.create(tenant=tenant, customer=c, score=score, scored_at=now)
        if i % 5 == 0:
            OutreachFactory(customer=c, status=Outreach.Status.PENDING_REVIEW)
        elif i % 5 == 1:
            OutreachFactory(customer=c, status=Outreach.Status.SENT)
    # Another tenant's customers (scored, pending, same plan) never show up.
    other = TenantFactory(slug="other")
    for i in range(5):
        c = CustomerFactory(
            tenant=other, external_id=f"x{i}", name=f"Amy other {i}", attributes={"plan": "pro"}
        )
        RiskScore.objects.create(tenant=other, customer=c, score=0.95, scored_at=now)
        OutreachFactory(customer=c)
    return customers


@pytest.fixture
def client(tenant):
    client = Client()
    client.force_login(MembershipFactory(tenant=tenant, role=Membership.Role.VIEWER).user)
    return client


def expected(customers, keep=lambda i, c: True) -> list[str]:
    """The page order: scored riskiest first (ties: newest score row first), then unscored newest first."""
    picked = [(i, c) for i, c in enumerate(customers) if keep(i, c)]
    scored = [(i, c) for i, c in picked if score_of(i) is not None]
    scored.sort(key=lambda ic: (-score_of(ic[0]), -ic[0]))  # scores were created in customer order
    unscored = sorted((ic for ic in picked if score_of(ic[0]) is None), key=lambda ic: -ic[1].pk)
    return [c.external_id for _, c in scored + unscored]


def walk(client, url: str, rel: str = "next") -> list[list[str]]:
    pages = []
    while url:
        response = client.get(url)
        assert response.status_code == 200
        text = response.content.decode()
        pages.append(ROW.findall(text))
        link = re.search(rf'<a class="button" href="(\?[^"]+)" rel="{rel}"', text)
        url = "/t/acme/customers/" + link.group(1).replace("&amp;", "&") if link else ""
        assert len(pages) < 50, "paging does not end"
    return pages


def test_paging_returns_every_customer_exactly_once_in_order(world, client):
    pages = walk(client, "/t/acme/customers/")
    assert [len(p) for p in pages] == [PAGE] * 8 + [4]
    assert [e for p in pages for e in p] == expected(world)
    first = client.get("/t/acme/customers/").content.decode()
    assert "<strong>60</strong> customers" in first and 'rel="prev"' not in first


def test_previous_walks_back_over_the_same_pages(world, client):
    forward = walk(client, "/t/acme/customers/")
    last = client.get("/t/acme/customers/").content.decode()
    url = "/t/acme/customers/"
    for _ in range(len(forward) - 1):  # to the last page
        link = re.search(r'href="(\?[^"]+)" rel="next"', client.get(url).content.decode())
        url = "/t/acme/customers/" + link.group(1).replace("&amp;", "&")
    last = client.get(url).content.decode()
    assert 'rel="next"' not in last
    prev = re.search(r'href="(\?[^"]+)" rel="prev"', last).group(1).replace("&amp;", "&")
    backward = walk(client, "/t/acme/customers/" + prev, rel="prev")
    assert backward == list(reversed(forward[:-1]))


def test_the_selector_pages_through_both_halves_with_any_filter(tenant, world):
    for band in ["", "high", "medium", "low", "none"]:
        filters = selectors.CustomerFilters(band=band, pending=band == "low")
        seen: list[str] = []
        after = ""
        while True:
            page = selectors.customer_page(tenant=tenant, filters=filters, after=after, limit=5)
            seen += [r["external_id"] for r in page.rows]
            if not page.next_cursor:
                break
            after = page.next_cursor
        assert len(seen) == len(set(seen)) == selectors.customer_count(tenant=tenant, filters=filters), band


@pytest.mark.parametrize(
    ("params", "keep"),
    [
        ("band=high", lambda i, c: (score_of(i) or 0) >= 0.5),
        ("band=medium", lambda i, c: score_of(i) is not None and 0.2 <= score_of(i) < 0.5),
        ("band=low", lambda i, c: score_of(i) is not None and score_of(i) < 0.2),
        ("band=none", lambda i, c: score_of(i) is None),
        ("plan=pro", lambda i, c: i % 3 == 0),
        ("pending=1", lambda i, c: i % 5 == 0),
        (
            "q=amy&band=high&plan=starter",
            lambda i, c: i % 2 == 0 and (score_of(i) or 0) >= 0.5 and i % 3 == 1,
        ),
        ("q=zed&pending=1", lambda i, c: i % 2 == 1 and i % 5 == 0),
        ("q=c01&band=none", lambda i, c: 10 <= i < 20 and score_of(i) is None),
    ],
)
def test_filters_and_search_combine_and_page(world, client, params, keep):
    want = expected(world, keep)
    assert want, "every case matches someone"
    pages = walk(client, f"/t/acme/customers/?{params}")
    assert [e for p in pages for e in p] == want
    first = client.get(f"/t/acme/customers/?{params}").content.decode()
    assert f"<strong>{len(want)}</strong> customer" in first
    assert 'href="/t/acme/customers/">Clear filters</a>' in first
    # The next link keeps every filter.
    if len(pages) > 1:
        link = re.search(r'href="\?([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
        for part in params.split("&"):
            assert part in link


def test_filters_show_their_current_values_and_the_tenants_plans(world, client):
    text = client.get("/t/acme/customers/?band=medium&plan=starter&pending=1").content.decode()
    assert '<option value="medium" selected>' in text
    assert '<option value="starter" selected>' in text and '<option value="pro" >' in text
    assert 'name="pending" value="1" checked' in text


def test_an_htmx_request_gets_only_the_results(world, client):
    partial = client.get("/t/acme/customers/?band=high", HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<section class="card" id="results">') and "<html" not in partial


def test_no_match_says_so_with_a_way_out(world, client):
    text = client.get("/t/acme/customers/?q=amy&band=none&pending=1&plan=nosuchplan").content.decode()
    assert "No customers match these filters" in text
    assert 'href="/t/acme/customers/">Clear filters</a>' in text
    assert "No customer matches “zzz”" in client.get("/t/acme/customers/?q=zzz").content.decode()


@pytest.mark.parametrize(
    "params",
    [
        "band=extreme",
        "band=",
        "after=garbage",
        "after=snan_3",
        "after=sinf_3",
        "after=s0.5_x",
        "before=u",
        "before=s1e999_1",
        "after=u99999999999999999999999",
        "pending=yes",
        "plan=" + "x" * 500,
        "after=u1&before=u2",
    ],
)
def test_bad_params_never_break_the_page(world, client, params):
    response = client.get(f"/t/acme/customers/?{params}")
    assert response.status_code == 200
    assert b"Traceback" not in response.content


def test_a_nul_in_the_search_is_a_400_not_a_500(world, client):
    assert client.get("/t/acme/customers/?q=a%00b").status_code == 400  # refused before the view


def test_an_unknown_band_is_ignored_and_said(world, client):
    text = client.get("/t/acme/customers/?band=extreme").content.decode()
    assert "Ignored an unknown band value" in text
    assert ROW.findall(text) == expected(world)[:PAGE]


def test_no_customers_at_all(tenant, client):
    assert Customer.objects.for_tenant(tenant).count() == 0
    assert "No scored customers yet" in client.get("/t/acme/customers/").content.decode()
