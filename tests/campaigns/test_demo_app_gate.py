"""/demo/app/ hands a customer token to anyone: it exists only when the demo is on."""

from __future__ import annotations

import pytest

from accounts.services import tenant_create
from tests.factories import CustomerFactory


@pytest.fixture
def demo_tenant(db):
    tenant, _ = tenant_create(slug="demo", name="Demo", reserved_ok=True)
    CustomerFactory(tenant=tenant, external_id="demo-ada")
    return tenant


def test_the_demo_app_is_a_404_when_the_demo_is_off(client, demo_tenant, settings):
    settings.DEMO = False
    response = client.get("/demo/app/?customer=demo-ada")
    assert response.status_code == 404
    assert demo_tenant.identity_secret not in response.content.decode()
    assert b"data-token" not in response.content


def test_the_demo_app_serves_the_demo_tenant_when_the_demo_is_on(client, demo_tenant, settings):
    settings.DEMO = True
    response = client.get("/demo/app/?customer=demo-ada")
    assert response.status_code == 200
    assert b"data-token=" in response.content


def test_demo_is_on_with_debug_and_off_by_default():
    from proactive.settings import env_bool

    assert env_bool("SURELY_UNSET_FLAG", False) is False
    import subprocess
    import sys

    from django.conf import settings as django_settings

    code = "from django.conf import settings; print(settings.DEMO)"
    base = {"PATH": "/usr/bin:/bin", "ENV_FILE": "", "DJANGO_SETTINGS_MODULE": "proactive.settings"}
    base["DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/none"
    results = {}
    for name, extra in {"prod": {"SECRET_KEY": "x" * 50}, "debug": {"DEBUG": "1"}}.items():
        out = subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); {code}"],
            cwd=django_settings.BASE_DIR,
            env={**base, **extra},
            capture_output=True,
            text=True,
            check=True,
        )
        results[name] = out.stdout.strip()
    assert results == {"prod": "False", "debug": "True"}
