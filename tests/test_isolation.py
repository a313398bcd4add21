"""The tenant isolation probe.

Walks every URL pattern the project resolves (API, pages, admin) as each persona of
tenant A (server key; admin, agent and viewer members) against tenant B's objects,
with every method, and fails when a response exposes B's data (its marker or ids)
or when B's rows change. A URL whose parameters the probe cannot fill fails too:
classify it in `fill_kwargs` so new endpoints are covered, never skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.core import signing
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.models import Membership, Tenant
from accounts.scoping import TenantOwned
from tests.isolation_world import MARKER, World, build_world

METHODS = ["get", "post", "patch", "put", "delete"]
HOSTILE = {"name": "hijacked", "title": "hijacked", "post": "yes", "enabled": "false", "action": "send"}
# Routes that are deliberately public or not tenant data at all.
PUBLIC = {
    "healthz",
    "schema",
    "accounts:login",
    "accounts:logout",
    "accounts:password_reset",
    "accounts:password_reset_done",
    "accounts:password_reset_confirm",
    "accounts:password_reset_complete",
    "admin:login",
    "admin:logout",
    "admin:jsi18n",
}


def walk(patterns: list, prefix: str = "", namespace: str | None = None) -> Iterator[tuple[str, str]]:
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = namespace
            if p.namespace:
                ns = f"{namespace}:{p.namespace}" if namespace else p.namespace
            yield from walk(p.url_patterns, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern):
            name = f"{namespace}:{p.name}" if namespace and p.name else (p.name or "")
            yield name, prefix + str(p.pattern)


ROUTES = sorted(set(walk(get_resolver().url_patterns)))


def _admin_model(name: str) -> type | None:
    # admin:<app>_<model>_<view>
    body = name.removeprefix("admin:")
    for model in admin.site._registry:
        stem = f"{model._meta.app_label}_{model._meta.model_name}_"
        if body.startswith(stem):
            return model
    return None


def fill_kwargs(name: str, route: str, world: World) -> dict[str, str]:
    """URL kwargs pointing at tenant B's objects; raises LookupError for an unknown route."""
    b = world.tenant_b
    params = {seg.split(">")[0].split(":")[-1] for seg in route.split("<")[1:]}
    if not params:
        return {}
    kwargs: dict[str, str] = {}
    if "tenant_slug" in params:
        kwargs["tenant_slug"] = b.slug
    obj_params = params - {"tenant_slug"}
    if route.startswith("admin/") and not name:
        if route == "admin/(?P<url>.*)$":
            return {"url": "nothing-here/"}
        app_label, model_name = route.split("/")[1:3]
        name = f"admin:{app_label}_{model_name}_change"
    if name == "admin:auth_user_password_change":
        return {"id": str(world.of(Membership).user_id)}
    if name.startswith("admin:"):
        if name == "admin:app_list":
            return {"app_label": "campaigns"}
        if name == "admin:view_on_site":
            customer = world.of(apps.get_model("proactive", "Customer"))
            return {
                "content_type_id": str(ContentType.objects.get_for_model(customer).pk),
                "object_id": str(customer.pk),
            }
        model = _admin_model(name)
        if model is not None and model._meta.app_label in GLOBAL_ADMIN_APPS and obj_params == {"object_id"}:
            return {"object_id": "1"}
        if model is not None and obj_params == {"object_id"}:
            if model is Tenant:
                return {"object_id": str(b.pk)}
            if model._meta.label == "accounts.User":
                return {"object_id": str(world.of(Membership).user_id)}
            return {"object_id": str(world.of(model).pk)}
        raise LookupError(name)
    by_param = URL_OBJECT_PARAMS.get(name)
    if by_param is None and obj_params:
        raise LookupError(name)
    for param, value_of in (by_param or {}).items():
        kwargs[param] = value_of(world)
    if set(kwargs) != params:
        raise LookupError(name)
    return kwargs


def _pk(app_model: str):
    return lambda w: str(w.of(apps.get_model(app_model)).pk)


def url_for(name: str, route: str, kwargs: dict[str, str]) -> str:
    if name:
        return reverse(name, kwargs=kwargs)
    if "(?P<url>" in route:
        return "/admin/" + kwargs["url"]
    path = route
    for key, value in kwargs.items():
        path = path.replace(f"<path:{key}>", value).replace(f"<{key}>", value)
    return "/" + path


# Admin apps that hold no tenant data; only superusers may open them.
GLOBAL_ADMIN_APPS = {"auth", "django_celery_beat"}


# url name -> {param: how to find tenant B's value}. Add new routes here.
URL_OBJECT_PARAMS: dict[str, dict] = {
    "accounts:key_revoke": {"prefix": lambda w: w.of(apps.get_model("accounts.ApiKey")).prefix},
    # A reset link for tenant B's admin with a token that is not valid: it must change nothing.
    "accounts:password_reset_confirm": {
        "uidb64": lambda w: urlsafe_base64_encode(force_bytes(w.of(Membership).user_id)),
        "token": lambda w: "set-password",
    },
    # Tenant pages (dashboard.urls, dashboard.playbook_urls): tenant B's objects.
    "dashboard:customer": {"external_id": lambda w: w.of(apps.get_model("proactive.Customer")).external_id},
    "dashboard:run": {"run_id": _pk("proactive.PipelineRun")},
    "dashboard:playbook_detail": {"playbook_id": _pk("campaigns.Playbook")},
    "dashboard:playbook_backtest": {"playbook_id": _pk("campaigns.Playbook")},
    "dashboard:playbook_edit": {"playbook_id": _pk("campaigns.Playbook")},
    "dashboard:campaign_detail": {"campaign_id": _pk("campaigns.Campaign")},
    "api:customer_detail": {"external_id": lambda w: w.of(apps.get_model("proactive.Customer")).external_id},
    # Playbooks, campaigns and incidents API (campaigns.api_urls): tenant B's ids.
    **{
        f"api:{name}": {"playbook_id": _pk("campaigns.Playbook")}
        for name in ("playbook", "playbook_preview", "playbook_effectiveness", "playbook_backtest")
    },
    "api:campaign": {"campaign_id": _pk("campaigns.Campaign")},
    # Insights (campaigns.insights_api, campaigns.insights_urls): tenant B's insight.
    "api:insight_playbook": {"insight_id": _pk("proactive.Insight")},
    "insights:playbook": {"insight_id": _pk("proactive.Insight")},
    "api:campaign_effectiveness": {"campaign_id": _pk("campaigns.Campaign")},
    "api:incident": {"incident_id": _pk("campaigns.Incident")},
    "api:incident_resolve": {"incident_id": _pk("campaigns.Incident")},
    # Webhook subscriptions (webhooks.api_urls, the dashboard's webhook pages): tenant B's endpoint.
    "api:webhook": {"webhook_id": _pk("webhooks.WebhookEndpoint")},
    "api:incident_confirm": {"incident_id": _pk("campaigns.Incident")},
    "api:incident_dismiss": {"incident_id": _pk("campaigns.Incident")},
    "dashboard:incident_detail": {"incident_id": _pk("campaigns.Incident")},
    "dashboard:incident_edit": {"incident_id": _pk("campaigns.Incident")},
    "dashboard:incident_action": {"incident_id": _pk("campaigns.Incident"), "action": lambda w: "confirm"},
    **{
        f"dashboard:{name}": {"endpoint_id": _pk("webhooks.WebhookEndpoint")}
        for name in ("webhook_detail", "webhook_toggle", "webhook_delete")
    },
    # The review queue (dashboard.urls): every item route gets tenant B's outreach.
    **{
        f"dashboard:{name}": {"outreach_id": _pk("campaigns.Outreach")}
        for name in ("item", "item_preview", "item_claim", "item_release", "item_edit", "item_send")
        + ("item_reject", "item_snooze")
    },
    # The end-customer inbox: A's personas carry no customer JWT for B, so it must refuse.
    "api:inbox_event": {"outreach_id": _pk("campaigns.Outreach")},
    # A validly shaped unsubscribe token for B's customer, signed with the wrong salt: forging fails.
    # (demo:app has no parameters: it serves only the tenant slugged "demo".)
    "campaigns:unsubscribe": {
        "token": lambda w: signing.Signer(salt="forged").sign_object(
            {"t": w.tenant_b.pk, "c": w.of(apps.get_model("proactive.Customer")).pk}
        )
    },
}


def snapshot(tenant: Tenant) -> dict:
    data: dict = {"tenant": list(Tenant.objects.filter(pk=tenant.pk).values())}
    for model in apps.get_models():
        if issubclass(model, TenantOwned):
            data[model._meta.label] = sorted(
                model.objects.for_tenant(tenant).values(), key=lambda row: str(row.get("id"))
            )
    data["memberships"] = list(Membership.objects.filter(tenant=tenant).order_by("pk").values())
    return data


def b_identifiers(world: World) -> list[str]:
    ids = [MARKER, world.tenant_b.publishable_key, world.tenant_b.identity_secret]
    for model, obj in world.objects.items():
        if issubclass(model, TenantOwned) and model._meta.pk.get_internal_type() == "UUIDField":
            ids.append(str(obj.pk))
    return ids


def personas(world: World) -> dict[str, Client]:
    clients = {"server_key": Client(HTTP_AUTHORIZATION=f"Bearer {world.a_key}")}
    for role, membership in world.members.items():
        client = Client()
        client.force_login(membership.user)
        clients[role] = client
    return clients


def test_the_world_has_every_tenant_owned_model(db):
    world = build_world()
    owned = {m for m in apps.get_models() if issubclass(m, TenantOwned)}
    missing = sorted(m._meta.label for m in owned - set(world.objects))
    assert not missing, f"add tenant B rows for {missing} to tests/isolation_world.py"


def test_every_route_is_classified(db):
    world = build_world()
    unknown = []
    for name, route in ROUTES:
        try:
            fill_kwargs(name, route, world)
        except LookupError:
            unknown.append((name, route))
    assert not unknown, f"the isolation probe cannot fill these routes; classify them: {unknown}"


def probe(url: str, name: str, world: World) -> list[str]:
    """Every persona x method against `url`; returns what leaked."""
    before = snapshot(world.tenant_b)
    secrets = b_identifiers(world)
    leaks = []
    for persona, client in personas(world).items():
        for method in METHODS:
            if method == "get":
                response = client.get(url)
            elif persona == "server_key":
                response = getattr(client, method)(
                    url, data=json.dumps(HOSTILE), content_type="application/json"
                )
            elif method == "post":
                response = client.post(url, data=HOSTILE)  # form-encoded, as admin and pages expect
            else:
                response = getattr(client, method)(
                    url, data=urlencode(HOSTILE), content_type="application/x-www-form-urlencoded"
                )
            if 200 <= response.status_code < 300 and name not in PUBLIC:
                text = response.content.decode(errors="replace")
                found = [s for s in secrets if s in text]
                if found:
                    leaks.append(
                        f"{persona} {method.upper()} {url} -> {response.status_code} shows {found[:3]}"
                    )
            assert response.status_code < 500, f"{persona} {method.upper()} {url} -> {response.status_code}"
    if snapshot(world.tenant_b) != before:
        leaks.append(f"tenant B's data changed through {url}")
    return leaks


@pytest.mark.parametrize(("name", "route"), ROUTES, ids=[f"{n or r}" for n, r in ROUTES])
def test_tenant_a_cannot_reach_tenant_b(db, name, route):
    world = build_world()
    try:
        kwargs = fill_kwargs(name, route, world)
    except LookupError:
        pytest.fail(f"unclassified route {name} {route}")
    leaks = probe(url_for(name, route, kwargs), name, world)
    assert not leaks, "\n".join(leaks)


@pytest.mark.urls("tests.leaky_urls")
def test_the_probe_catches_a_leaky_view(db):
    world = build_world()
    assert probe("/leaky/customers", "leaky", world), (
        "the probe missed a view that lists every tenant's customers"
    )
    assert probe("/leaky/rename", "leaky-write", world), (
        "the probe missed a view that renames another tenant's rows"
    )
