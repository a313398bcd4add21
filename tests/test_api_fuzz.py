"""The OpenAPI schema is complete, and the API honours it under generated input.

`test_the_schema_describes_every_api_route` walks the URL resolver: every `/api/v1` route
and each method its view implements must be in `/api/schema/` with a response body schema
(and a request body schema for writes). `test_fuzzing_finds_no_server_error_or_schema_violation`
runs schemathesis over every operation, positive and negative input, authenticated as the
tenant's server key (and, for the inbox, as a customer: publishable key + JWT), against
real objects of that tenant, through schemathesis's examples and fuzzing phases (not its
coverage phase: see fuzz_schema), with every check schemathesis has (ALL_CHECKS): valid-by-schema
input must be accepted and invalid input rejected, every status, content type, header and body
must be as documented, methods not in the schema must answer 405, and auth must not be ignored.
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
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.generation.modes import GenerationMode

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
EXAMPLES = 60  # fuzzing examples per operation (the examples phase adds the schema's own)

load_all_checks()
# Every check schemathesis has: server errors, status code / content type / headers / body
# conformance, positive data accepted, negative data rejected, missing required headers,
# unsupported methods (405 with Allow), ignored auth, use after free, resource availability...
ALL_CHECKS = CHECKS.get_all()
# Checks left out for one operation, each with why.
# The batch endpoints answer 200 with per-record errors by contract (DESIGN.md: "good records are
# stored even when others in the batch are bad"), so a schema-invalid record is not a rejection.
PER_RECORD_ERRORS = {"negative_data_rejection"}
EXCLUDED: dict[tuple[str, str], set[str]] = {
    ("/api/v1/customers/batch", "post"): PER_RECORD_ERRORS,
    ("/api/v1/signals/batch", "post"): PER_RECORD_ERRORS,
    **{
        (f"/ingest/segment/v1/{kind}", "post"): PER_RECORD_ERRORS
        for kind in ("batch", "track", "identify", "page", "screen")
    },
    # Django's URLValidator also limits host labels to 63 characters and the host to 253, which
    # the schema's `format: uri` does not say; a schema-valid long host is a 400.
    ("/api/v1/webhooks", "post"): {"positive_data_acceptance"},
    # An opaque cursor's validity cannot be put in a schema; a malformed one is a 400
    # (tests/proactive/test_scores_api.py), which the check counts as refusing valid input.
    ("/api/v1/scores", "get"): {"positive_data_acceptance"},
    # PATCH merges nested objects (DESIGN.md "PATCH merges"), so leaving out a property the nested
    # component marks required is fine; drf-spectacular has no partial nested components. And an
    # unknown setting is a 400 ("Unknown setting.") where the components do not yet say
    # `additionalProperties: false`.
    ("/api/v1/tenant", "patch"): {"negative_data_rejection", "positive_data_acceptance"},
    # An empty filter (`?status=`) means "not set" (accounts.api_base.QuerySerializer), so clients
    # that send every parameter of the contract's query and leave some empty keep working; the
    # schema's enum and uuid formats call "" invalid.
    ("/api/v1/outreach", "get"): {"negative_data_rejection"},
    ("/api/v1/incidents", "get"): {"negative_data_rejection"},
}


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


@pytest.fixture
def keep_test_connection():
    """The WSGI handler closes the DB connection after each request, as in production; the
    test's transaction lives on that connection, so keep it open (as Django's test client does)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_schema(fuzz_world, keep_test_connection, settings, request):
    # schemathesis 4.32's lazy schema reads `node._nodeid`, which pytest 9 no longer has.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid
    # The fuzzer is one client sending thousands of requests a minute: not what the limits are
    # for (tests/accounts/test_expensive_limits.py covers them).
    settings.PREVIEW_RATE_LIMIT_PER_MINUTE = settings.BACKTEST_RATE_LIMIT_PER_MINUTE = 10**9
    settings.INBOX_UNKNOWN_KEY_RATE_LIMIT_PER_MINUTE = 10**9
    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
    schema.config.update(parameters={f"path.{name}": value for name, value in fuzz_world["params"].items()})
    # No NUL characters in generated strings: PostgreSQL cannot store them, so the API refuses a
    # body holding one anywhere, also in keys it would ignore (accounts/api_parsers.py), which
    # the schema cannot express. That refusal has its own tests (tests/security).
    schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], allow_x00=False)
    # Not the coverage phase: it enumerates every boundary of a schema, and on the recursive
    # condition grammar (playbooks, campaigns, incidents) that took 5 minutes of the suite against
    # seconds for the rest. The examples and fuzzing phases run, with more fuzzing examples.
    schema.config.phases.update(phases=["examples", "fuzzing"])
    return schema


fuzzed = schemathesis.pytest.from_fixture("fuzz_schema")
CASES: dict[str, int] = {}
TOO_MANY_COMPARISONS = re.compile(r'^\{"\w+":\["\w+: at most \d+ comparisons, got \d+"\]\}$')


@fuzzed.parametrize()
# derandomize: the same cases every run, so CI is repeatable; widen EXAMPLES locally to explore.
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_fuzzing_finds_no_server_error_or_schema_violation(case, fuzz_world):
    label = f"{case.operation.method.upper()} {case.operation.path}"
    CASES[label] = CASES.get(label, 0) + 1
    excluded = EXCLUDED.get((case.operation.path, case.method.lower()), set())
    documented = {parameter.name for parameter in case.operation.query}
    if set(case.query or {}) - documented:
        # Unknown query parameters are ignored, as HTTP APIs do and as schemathesis allows; a
        # negative case whose only fault is one (and the Authorization header this test puts
        # back) is not a request the API should refuse.
        excluded = excluded | {"negative_data_rejection"}
    headers = _headers(case.operation.path, fuzz_world)
    response = case.call(headers=headers)
    if response.status_code == 400 and TOO_MANY_COMPARISONS.search(response.text):
        # The one rule of the condition grammar a JSON schema cannot state: at most MAX_LEAVES
        # comparisons over the whole tree (it is in the schema's description). Every other
        # refusal of schema-valid input still fails this test.
        excluded = excluded | {"positive_data_acceptance"}
    case.validate_response(
        response,
        checks=[check for check in ALL_CHECKS if check.__name__ not in excluded],
        headers=headers,
        transport_kwargs={"headers": dict(headers)},
    )


def test_every_operation_was_fuzzed(schema_doc):
    """Run after the fuzzing (same module): what it covered, in numbers."""
    operations = [(p, m) for p, ops in schema_doc["paths"].items() for m in ops if m != "parameters"]
    cases = sum(CASES.values())
    print(f"schemathesis: {len(CASES)} operations, {cases} cases, {len(ALL_CHECKS)} checks")
    if CASES:  # when the fuzzing test ran in this session
        assert len(CASES) == len(operations) >= 25, sorted(CASES)
