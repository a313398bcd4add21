import pytest

from accounts.scoping import TenantScopeError
from proactive.models import Customer
from tests.factories import CustomerFactory, TenantFactory


@pytest.fixture
def two_tenants(db):
    a, b = TenantFactory(), TenantFactory()
    CustomerFactory(tenant=a, external_id="a1")
    CustomerFactory(tenant=b, external_id="b1")
    return a, b


def test_an_unscoped_query_fails_closed(two_tenants):
    with pytest.raises(TenantScopeError):
        list(Customer.objects.all())
    with pytest.raises(TenantScopeError):
        Customer.objects.filter(external_id="b1").count()
    with pytest.raises(TenantScopeError):
        Customer.objects.filter(external_id="b1").update(name="x")
    with pytest.raises(TenantScopeError):
        Customer.objects.get(external_id="b1")


def test_for_tenant_sees_only_that_tenant(two_tenants):
    a, _ = two_tenants
    assert list(Customer.objects.for_tenant(a).values_list("external_id", flat=True)) == ["a1"]
    assert Customer.objects.filter(tenant_id=a.pk).count() == 1


def test_an_or_across_tenants_is_not_a_scope(two_tenants):
    from django.db.models import Q

    a, _ = two_tenants
    with pytest.raises(TenantScopeError):
        list(Customer.objects.filter(Q(tenant=a) | Q(external_id="b1")))


def test_for_tenant_none_is_an_error(two_tenants):
    with pytest.raises(TenantScopeError):
        Customer.objects.for_tenant(None)


def test_unscoped_is_the_named_escape_hatch(two_tenants):
    assert Customer.objects.unscoped().filter(external_id__in=["a1", "b1"]).count() == 2
