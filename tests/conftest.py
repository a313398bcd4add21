from __future__ import annotations

import shutil

import pytest
from django.test import Client

from accounts.models import Membership
from accounts.services import api_key_create
from tests.factories import MembershipFactory, TenantFactory


@pytest.fixture
def tenant(db):
    return TenantFactory(slug="acme", name="Acme")


@pytest.fixture
def api_key(tenant):
    return api_key_create(tenant=tenant).secret


@pytest.fixture
def api(api_key):
    """A test client that sends the tenant's server key."""
    return Client(HTTP_AUTHORIZATION=f"Bearer {api_key}")


def _member_client(tenant, role):
    membership = MembershipFactory(tenant=tenant, role=role, user__is_staff=role == Membership.Role.ADMIN)
    client = Client()
    client.force_login(membership.user)
    client.user = membership.user
    return client


@pytest.fixture
def admin_client_for(tenant):
    return _member_client(tenant, Membership.Role.ADMIN)


@pytest.fixture
def agent_client(tenant):
    return _member_client(tenant, Membership.Role.AGENT)


@pytest.fixture
def viewer_client(tenant):
    return _member_client(tenant, Membership.Role.VIEWER)


@pytest.fixture(autouse=True)
def fresh_cache():
    """Each test starts with an empty cache: the Redis database outlives the session, and a new test
    database reuses primary keys that cached entries (rate-limit windows, detector history) name."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(scope="session", autouse=True)
def collected_static(tmp_path_factory):
    """Collect static files once, with the manifest storage production uses (test_settings)."""
    from django.conf import settings
    from django.core.management import call_command

    settings.STATIC_ROOT.mkdir(parents=True, exist_ok=True)
    call_command("collectstatic", interactive=False, verbosity=0, clear=True)
    # pytest-django's live_server serves /static/ through the finders, which know no hashed
    # names (chart.umd.min.aa28....js is a 404): serve the collected folder, as production does.
    import django.contrib.staticfiles.handlers as static_handlers
    from django.test.testcases import _StaticFilesHandler

    finders_handler = static_handlers.StaticFilesHandler
    static_handlers.StaticFilesHandler = _StaticFilesHandler  # type: ignore[misc]
    yield settings.STATIC_ROOT
    static_handlers.StaticFilesHandler = finders_handler  # type: ignore[misc]
    shutil.rmtree(settings.STATIC_ROOT, ignore_errors=True)
