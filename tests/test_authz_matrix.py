"""The authorization matrix (tests/authz_matrix.py) against reality.

Every route of the URL resolver (walked as in tests/test_isolation.py) is requested by
each role against the tenant's OWN objects, and the outcome must match the checked-in
table. A route missing from the table fails, as does a table row for a route that no
longer exists. Allowed = anything but 401/403/404 or a redirect to a login page. GET
is used unless the route refuses it (405), then POST; each request runs in a savepoint
that is rolled back, so one role's write does not change what the next one sees.
"""

from __future__ import annotations

from http.cookies import SimpleCookie

import pytest
from django.db import transaction
from django.test import Client

from accounts.models import Membership
from accounts.services import api_key_create
from campaigns.delivery import unsubscribe_token
from proactive.models import Customer
from tests.authz_matrix import MATRIX, ROLES
from tests.campaigns.inbox_fixtures import mint
from tests.factories import MembershipFactory, UserFactory
from tests.isolation_world import World, build_world
from tests.test_isolation import ROUTES, fill_kwargs, url_for

DENIED = {401, 403, 404}


def route_key(name: str, route: str) -> str:
    return name or route


def own_world() -> tuple[World, dict[str, Client]]:
    """Tenant B of the isolation world, seen from inside: its members, key and a customer."""
    world = build_world()
    own = world.tenant_b
    customer = world.of(Customer)
    clients = {"anonymous": Client()}
    clients["customer"] = Client(
        HTTP_X_PUBLISHABLE_KEY=own.publishable_key,
        HTTP_AUTHORIZATION=f"Bearer {mint(own.identity_secret, customer.external_id)}",
    )
    clients["server_key"] = Client(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=own).secret}")
    members = {
        "viewer": MembershipFactory(tenant=own, role=Membership.Role.VIEWER).user,
        "agent": MembershipFactory(tenant=own, role=Membership.Role.AGENT).user,
        "tenant_admin": world.of(Membership).user,
        "superuser": UserFactory(is_staff=True, is_superuser=True),
    }
    for role, user in members.items():
        client = Client()
        client.force_login(user)
        clients[role] = client
    return world, clients


def url_of(name: str, route: str, world: World) -> str:
    if name == "campaigns:unsubscribe":
        return url_for(name, route, {"token": unsubscribe_token(world.of(Customer))})
    return url_for(name, route, fill_kwargs(name, route, world))


def allowed(persona: Client, url: str) -> bool:
    # A fresh client with the persona's headers and session cookie: logging out (or any
    # cookie change) through one route must not change who the next request is.
    client = Client(**persona.defaults)
    client.cookies = SimpleCookie(persona.cookies)
    with transaction.atomic():
        response = client.get(url)
        if response.status_code == 405:
            response = client.post(url, data={})
        transaction.set_rollback(True)
    if response.status_code in DENIED:
        return False
    if response.status_code in (301, 302):
        location = response.get("Location", "")
        return "/login/" not in location
    return True


def test_every_route_has_a_row_and_every_row_a_route():
    keys = {route_key(name, route) for name, route in ROUTES}
    assert not sorted(keys - set(MATRIX)), (
        f"add these routes to tests/authz_matrix.py: {sorted(keys - set(MATRIX))}"
    )
    assert not sorted(set(MATRIX) - keys), (
        f"stale rows in tests/authz_matrix.py: {sorted(set(MATRIX) - keys)}"
    )
    assert all(len(row) == len(ROLES) and set(row) <= {"+", "-"} for row in MATRIX.values())


def _actual(row_routes: list[tuple[str, str]], world: World, clients: dict[str, Client]) -> dict[str, str]:
    got = {}
    for name, route in row_routes:
        url = url_of(name, route, world)
        got[route_key(name, route)] = "".join("+" if allowed(clients[r], url) else "-" for r in ROLES)
    return got


GROUPS = sorted({(n.split(":")[0] if ":" in n else "unnamed") for n, _ in ROUTES})


@pytest.mark.parametrize("group", GROUPS)
def test_the_matrix_matches_reality(db, group):
    world, clients = own_world()
    routes = [(n, r) for n, r in ROUTES if (n.split(":")[0] if ":" in n else "unnamed") == group]
    actual = _actual(routes, world, clients)
    wrong = [
        f"{key}: expected {MATRIX.get(key)} got {got}   ({' '.join(ROLES)})"
        for key, got in actual.items()
        if MATRIX.get(key) != got
    ]
    assert not wrong, "\n".join(wrong)
