"""Webhooks never call private, loopback or link-local addresses unless WEBHOOKS_ALLOW_PRIVATE is on:
not when subscribing, and not at delivery time when the name has since been re-pointed (DNS rebinding)."""

from __future__ import annotations

import socket

import pytest

from campaigns.incidents import incident_open
from tests.campaigns.helpers import T0
from tests.webhooks.helpers import create_webhook, deliveries
from tests.webhooks.test_delivery import INCIDENT
from webhooks import net
from webhooks.models import WebhookAttempt, WebhookEndpoint


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://172.16.5.4/hook",
        "http://192.168.1.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[::1]/hook",
        "http://[fe80::1]/hook",
        "http://[fd00::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ],
)
def test_private_destinations_are_refused_on_subscription(api, tenant, url):
    response = api.post(
        "/api/v1/webhooks", {"url": url, "events": ["outreach.sent"]}, content_type="application/json"
    )
    assert response.status_code == 400
    assert "refused" in response.json()["url"][0]
    assert not WebhookEndpoint.objects.for_tenant(tenant).exists()


def test_the_page_refuses_them_too(admin_client_for, tenant):
    response = admin_client_for.post(
        f"/t/{tenant.slug}/webhooks/", {"url": "http://169.254.169.254/", "events": ["outreach.sent"]}
    )
    assert response.status_code == 400
    assert "private or reserved address" in response.content.decode()
    assert not WebhookEndpoint.objects.for_tenant(tenant).exists()


@pytest.fixture
def fake_dns(monkeypatch):
    """The outside world's DNS, as the test says it answers."""
    answers: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in answers[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(net.socket, "getaddrinfo", getaddrinfo)
    return answers


def test_a_name_that_resolves_to_any_private_address_is_refused(api, fake_dns):
    fake_dns["mixed.example.com"] = ["93.184.215.14", "10.0.0.7"]
    response = api.post(
        "/api/v1/webhooks", {"url": "https://mixed.example.com/h", "events": ["outreach.sent"]},
        content_type="application/json",
    )  # fmt: skip
    assert response.status_code == 400 and "10.0.0.7" in response.json()["url"][0]


def test_a_name_without_an_address_yet_is_accepted_and_not_called(
    tenant, api, fake_dns, django_capture_on_commit_callbacks, monkeypatch
):
    def no_such_host(host, port, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(net.socket, "getaddrinfo", no_such_host)
    create_webhook(api, "https://hooks.not-yet.example/h", ["incident.opened"])
    with django_capture_on_commit_callbacks(execute=True):
        incident_open(tenant=tenant, data=INCIDENT, as_of=T0)
    [delivery] = deliveries(tenant)
    assert delivery.status == "pending"  # retried later, when the name may resolve
    attempt = WebhookAttempt.objects.for_tenant(tenant).get()
    assert attempt.error == "refused: hooks.not-yet.example does not resolve"


def test_a_name_rebound_to_loopback_after_subscribing_is_not_called(
    tenant, api, receiver, fake_dns, django_capture_on_commit_callbacks
):
    port = receiver.server.server_address[1]
    fake_dns["hooks.example.com"] = ["93.184.215.14"]
    create_webhook(api, f"http://hooks.example.com:{port}/h", ["incident.opened"])
    fake_dns["hooks.example.com"] = ["127.0.0.1"]  # the attacker re-points the name
    with django_capture_on_commit_callbacks(execute=True):
        incident_open(tenant=tenant, data=INCIDENT, as_of=T0)
    assert receiver.requests == []
    [delivery] = deliveries(tenant)
    assert delivery.status == "pending"  # retried later: the name may point back
    attempt = WebhookAttempt.objects.for_tenant(tenant).get()
    assert attempt.succeeded is False
    assert attempt.error == "refused: hooks.example.com resolves to a private or reserved address (127.0.0.1)"


def test_with_private_addresses_allowed_the_checked_address_is_the_one_called(
    tenant, api, receiver, fake_dns, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    port = receiver.server.server_address[1]
    fake_dns["hooks.example.com"] = ["127.0.0.1"]
    create_webhook(api, f"http://hooks.example.com:{port}/h?x=1", ["incident.opened"])
    with django_capture_on_commit_callbacks(execute=True):
        incident_open(tenant=tenant, data=INCIDENT, as_of=T0)
    [request] = receiver.requests
    assert request.headers["Host"] == f"hooks.example.com:{port}"
    assert deliveries(tenant)[0].status == "succeeded"
