from __future__ import annotations

import pytest

from campaigns.rendering import markdown_to_html, render_message, substitute_text, unknown_variables
from tests.campaigns.inbox_fixtures import executable_parts

HOSTILE_NAME = '<img src=x onerror="alert(1)"> Eve <script>alert(2)</script>'


def customer(**over):
    data = {
        "name": "Ada Lovelace",
        "email": "ada@example.test",
        "external_id": "u-1",
        "attributes": {"plan": "pro", "site": "javascript:alert(3)"},
    }
    data.update(over)
    return data


def test_it_substitutes_allow_listed_variables():
    r = render_message(
        title="Hi {{ customer.first_name }}",
        body="Plan **{{customer.attributes.plan}}** for {{ customer.email }} ({{ customer.external_id }})",
        customer=customer(),
    )
    assert r.title == "Hi Ada"
    assert r.body_html == "<p>Plan <strong>pro</strong> for ada@example.test (u-1)</p>\n"


def test_unknown_variables_render_empty_and_are_reported():
    assert substitute_text("x{{ customer.password }}y{{ settings.SECRET_KEY }}", {"name": "A"}) == (
        "xy{{ settings.SECRET_KEY }}"
    )
    assert unknown_variables("{{ customer.password }} {{ customer.attributes.x }}") == ["password"]


def test_default_applies_when_the_value_is_missing():
    r = render_message(
        title='Hi {{ customer.first_name|default:"there" }}', body="", customer=customer(name="")
    )
    assert r.title == "Hi there"


def test_tenant_text_never_reaches_the_template_engine():
    r = render_message(
        title="{% load static %}{{ request }}",
        body="{% debug %} {{ settings.SECRET_KEY }}",
        customer=customer(),
    )
    assert r.title == "{% load static %}{{ request }}"
    assert "{% debug %}" in r.body_html
    assert "SECRET" in r.body_html and "test-only-secret-key" not in r.body_html


@pytest.mark.parametrize(
    "body",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "[click](javascript:alert(1))",
        '<a href="javascript:alert(1)">x</a>',
        "<iframe src='https://evil.test'></iframe>",
        '<svg onload="alert(1)"></svg>',
        "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    ],
)
def test_script_payloads_in_bodies_never_come_out_executable(body):
    assert executable_parts(markdown_to_html(body, {})) == []


def test_hostile_customer_data_is_escaped_text_even_inside_links():
    r = render_message(
        title="{{ customer.name }}",
        body="Hi {{ customer.name }} [site]({{ customer.attributes.site }}) {{ customer.attributes.plan }}",
        customer=customer(
            name=HOSTILE_NAME, attributes={"site": "javascript:alert(3)", "plan": "[a](javascript:x)"}
        ),
    )
    assert executable_parts(r.body_html) == []
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; Eve &lt;script&gt;" in r.body_html
    assert 'href="javascript%3Aalert%283%29"' in r.body_html  # a relative link, never a javascript: URL
    assert "[a](javascript:x)" in r.body_html  # customer data is not Markdown
    assert r.title == HOSTILE_NAME  # plain text; escaped wherever it is shown
