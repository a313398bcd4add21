"""The OpenAPI schema is complete, and the API honours it under generated input.

`test_the_schema_describes_every_api_route` walks the URL resolver: every `/api/v1` route
and each method its view implements must be in `/api/schema/` with a response body schema
(and a request body schema for writes). `test_fuzzing_finds_no_server_error_or_schema_violation`
runs schemathesis over every operation, positive and negative input, authenticated as the
tenant's server key (and, for the inbox, as a customer: publishable key + JWT), against
real objects of that tenant, and fails on any 5xx or response that breaks the schema.
"""

from __future__ import annotations

import re
import uuid

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.urls import resolve
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from accounts.services import api_key_create
from campaigns.inbox import identity as inbox_identity
from campaigns.inbox import views as inbox_views
from tests.campaigns.inbox_fixtures import mint
from tests.factories import (
    CampaignFactory,
    CustomerFactory,
    IncidentFactory,
    OutreachFactory,
    PlaybookFactory,
    TenantFactory,
)
from tests.test_isolation import ROUTES
from webhooks.models import WebhookEndpoint
from webhooks.signing import new_secret

# Writes whose view takes no body (the action is the URL).
NO_BODY = {
    ("/api/v1/playbooks/{playbook_id}/preview", "post"),
    ("/api/v1/incidents/{incident_id}/resolve", "post"),
    ("/api/v1/incidents/{incident_id}/confirm", "post"),
    ("/api/v1/incidents/{incident_id}/dismiss", "post"),
}
EXAMPLES = 10


def openapi_path(route: str) -> str:
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


@pytest.fixture
def private_cache(settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}
    }
    inbox_identity._tenant_memo.clear()
    inbox_views._origin_memo.clear()
    yield
    inbox_identity._tenant_memo.clear()
    inbox_views._origin_memo.clear()


@pytest.fixture
def schema_doc(client, db):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return response.json() if response["Content-Type"].startswith("application/json") else _yaml(response)


def _yaml(response):
    import yaml

    return yaml.safe_load(response.content)


def test_the_schema_describes_every_api_route(schema_doc):
    missing = []
    for _name, route in ROUTES:
        if not route.startswith("api/v1/"):
            continue
        path = openapi_path(route)
        ops = schema_doc["paths"].get(path)
        if ops is None:
            missing.append(f"{path}: not in the schema")
            continue
        view = resolve(re.sub(r"\{\w+\}", str(uuid.uuid4()), path)).func
        cls = getattr(view, "view_class", None) or getattr(view, "cls", None)
        methods = [m for m in ("get", "post", "put", "patch", "delete") if cls and hasattr(cls, m)]
        for method in methods:
            op = ops.get(method)
            if op is None:
                missing.append(f"{method.upper()} {path}: not in the schema")
                continue
            ok = [code for code in op["responses"] if code.startswith("2")]
            if not ok:
                missing.append(f"{method.upper()} {path}: no 2xx response")
            elif ok != ["204"] and not any("content" in op["responses"][c] for c in ok):
                missing.append(f"{method.upper()} {path}: 2xx response without a body schema")
            writes = method in ("post", "put", "patch") and (path, method) not in NO_BODY
            if writes and "requestBody" not in op:
                missing.append(f"{method.upper()} {path}: no request body schema")
    assert not missing, "\n".join(missing)


def test_the_schema_declares_inbox_and_server_key_security(schema_doc):
    schemes = schema_doc["components"]["securitySchemes"]
    assert {"serverKey", "publishableKey", "customerToken"} <= set(schemes)
    inbox_ops = [schema_doc["paths"]["/api/v1/inbox"]["get"]]
    assert all(op["security"] == [{"publishableKey": [], "customerToken": []}] for op in inbox_ops)


@pytest.fixture
def fuzz_world(db, private_cache):
    tenant = TenantFactory(slug="fuzz", name="Fuzz")
    customer = CustomerFactory(tenant=tenant, external_id="cust-1", name="Ada <b>Lovelace</b>")
    playbook = PlaybookFactory(tenant=tenant)
    campaign = CampaignFactory(tenant=tenant)
    incident = IncidentFactory(tenant=tenant)
    outreach = OutreachFactory(
        tenant=tenant, customer=customer, playbook=playbook, status="sent", sent_at=timezone.now()
    )
    webhook = WebhookEndpoint.objects.create(
        tenant=tenant, url="https://hooks.example.com/h", events=["outreach.sent"], secret=new_secret()
    )
    return {
        "key": api_key_create(tenant=tenant).secret,
        "pk": tenant.publishable_key,
        "jwt": mint(tenant.identity_secret, customer.external_id),
        "params": {
            "playbook_id": str(playbook.pk),
            "campaign_id": str(campaign.pk),
            "incident_id": str(incident.pk),
            "outreach_id": str(outreach.pk),
            "external_id": customer.external_id,
            "webhook_id": str(webhook.pk),
        },
    }


def _headers(path: str, world: dict) -> dict[str, str]:
    if path.startswith("/api/v1/inbox"):
        return {"X-Publishable-Key": world["pk"], "Authorization": f"Bearer {world['jwt']}"}
    return {"Authorization": f"Bearer {world['key']}"}


def fuzz(strategy, headers: dict[str, str]) -> None:
    checks = [not_a_server_error, response_schema_conformance, content_type_conformance]

    @given(case=strategy)
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case):
        response = case.call(headers=headers)
        case.validate_response(response, checks=checks)

    run()


@pytest.fixture
def keep_test_connection():
    """The WSGI handler closes the DB connection after each request, as in production; the
    test's transaction lives on that connection, so keep it open (as Django's test client does)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def test_fuzzing_finds_no_server_error_or_schema_violation(fuzz_world, keep_test_connection):
    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    ran = []
    for result in schema.get_all_operations():
        operation = result.ok()
        params = {
            name: value for name, value in fuzz_world["params"].items() if "{" + name + "}" in operation.path
        }
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=params or None)
            fuzz(strategy, _headers(operation.path, fuzz_world))
        ran.append(f"{operation.method.upper()} {operation.path}")
    assert len(ran) >= 25, ran
