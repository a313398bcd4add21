import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.api_auth import api_key_authenticate
from accounts.models import ApiKey, Membership, Tenant


def run(*args):
    out = StringIO()
    call_command("create_tenant", *args, stdout=out)
    return json.loads(out.getvalue())


def test_it_prints_the_contract_keys(db):
    data = run(
        "acme", "--name", "Acme Inc", "--admin-email", "boss@acme.test", "--admin-password", "pw-long-123"
    )
    assert set(data) == {"tenant", "secret_key", "publishable_key", "identity_secret"}
    assert data["tenant"] == "acme"
    assert data["secret_key"].startswith("sk_") and data["publishable_key"].startswith("pk_")
    tenant = Tenant.objects.get(slug="acme")
    assert tenant.name == "Acme Inc"
    membership = Membership.objects.get(tenant=tenant)
    assert membership.role == "admin" and membership.user.check_password("pw-long-123")
    assert membership.user.is_staff


def test_the_secret_is_stored_only_as_a_hash(db):
    data = run("acme")
    key = ApiKey.objects.for_tenant(Tenant.objects.get(slug="acme")).get()
    assert data["secret_key"] not in (key.key_hash, key.prefix)
    assert data["secret_key"].startswith(key.prefix)
    assert api_key_authenticate(data["secret_key"]) == key


def test_an_existing_slug_is_an_error(db):
    run("acme")
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_tenant", "acme", stdout=StringIO())
    assert Tenant.objects.filter(slug="acme").count() == 1


def test_a_bad_slug_is_an_error(db):
    with pytest.raises(CommandError, match="not a valid slug"):
        call_command("create_tenant", "no spaces", stdout=StringIO())


@pytest.mark.parametrize("slug", ["demo", "DEMO"])
def test_the_demo_slug_is_reserved(db, slug):
    with pytest.raises(CommandError, match="reserved"):
        call_command("create_tenant", slug, stdout=StringIO())
    assert not Tenant.objects.filter(slug__iexact="demo").exists()
