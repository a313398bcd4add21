"""Message rendering: tenant Markdown -> sanitised HTML, with allow-listed customer variables.

Tenant text never reaches the Django template engine. Variables are written
`{{ customer.name }}` (optionally `{{ customer.first_name|default:"there" }}`) and
resolved from an allow-list by a small regex. Markdown is rendered first with opaque
placeholders in place of the variables, the HTML is sanitised by nh3, and only then
are the HTML-escaped values put in, so a customer's data can neither become Markdown
nor markup.
"""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import nh3
from markdown_it import MarkdownIt

VARIABLE_RE = re.compile(
    r"\{\{\s*customer\.(?P<path>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_.-]{1,100})?)"
    r"\s*(?:\|\s*default\s*:\s*\"(?P<default>[^\"{}]{0,100})\"\s*)?\}\}"
)
FIELDS = ("name", "first_name", "email", "external_id")

ALLOWED_TAGS = {
    "a",
    "b",
    "blockquote",
    "br",
    "code",
    "em",
    "h3",
    "h4",
    "hr",
    "i",
    "li",
    "ol",
    "p",
    "pre",
    "strong",
    "ul",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
URL_SCHEMES = {"http", "https", "mailto"}

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
    "strikethrough"
)


@dataclass(frozen=True)
class RenderedMessage:
    title: str
    body_html: str
    body_text: str


def customer_variables(customer: Any) -> dict[str, str]:
    """The allow-listed values of a customer (model instance or mapping) as strings."""
    get = (
        customer.get
        if isinstance(customer, Mapping)
        else lambda key, default="": getattr(customer, key, default)
    )
    name = str(get("name", "") or "")
    values = {
        "name": name,
        "first_name": name.split()[0] if name.split() else "",
        "email": str(get("email", "") or ""),
        "external_id": str(get("external_id", "") or ""),
    }
    attributes = get("attributes", None) or {}
    if isinstance(attributes, Mapping):
        for key, value in attributes.items():
            if isinstance(value, str | int | float | bool):
                values[f"attributes.{key}"] = str(value)
    return values


def variable_names(text: str) -> list[str]:
    """The variables a template uses, e.g. for validation and the editor's hints."""
    return [m.group("path") for m in VARIABLE_RE.finditer(text or "")]


def unknown_variables(text: str) -> list[str]:
    return [p for p in variable_names(text) if p not in FIELDS and not p.startswith("attributes.")]


_HTML_TAG_RE = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(\s[^<>]*)?/?>")


def typed_html(text: str) -> list[str]:
    """HTML tags an author typed: Markdown here shows them to customers as literal text."""
    return list(dict.fromkeys(m.group(0) for m in _HTML_TAG_RE.finditer(text or "")))[:5]


def _value(match: re.Match[str], values: Mapping[str, str]) -> str:
    value = values.get(match.group("path"), "")
    return value if value else (match.group("default") or "")


def substitute_text(text: str, values: Mapping[str, str]) -> str:
    """Plain-text substitution (titles, the text part of an email): no markup is produced."""
    return VARIABLE_RE.sub(lambda m: _value(m, values), text or "")


def sanitize_html(fragment: str) -> str:
    return nh3.clean(
        fragment,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def markdown_to_html(text: str, values: Mapping[str, str]) -> str:
    """Markdown -> sanitised HTML, with variables substituted as escaped text after sanitising."""
    token = "pv" + secrets.token_hex(6)
    found: list[str] = []

    def placeholder(match: re.Match[str]) -> str:
        found.append(_value(match, values))
        return f"{token}x{len(found) - 1}x"

    source = VARIABLE_RE.sub(placeholder, text or "")
    safe = sanitize_html(_markdown.render(source))
    if not found:
        return safe
    slot = re.compile(rf"{token}x(\d+)x")

    def in_tag(match: re.Match[str]) -> str:
        # Inside an attribute (a link's href) a value is percent-encoded whole, so it can
        # never bring its own scheme such as `javascript:`.
        return slot.sub(lambda m: quote(found[int(m.group(1))], safe=""), match.group(0))

    safe = re.sub(r"<[^>]*>", in_tag, safe)
    return slot.sub(lambda m: html.escape(found[int(m.group(1))], quote=True), safe)


def render_message(*, title: str, body: str, customer: Any) -> RenderedMessage:
    values = customer_variables(customer)
    return RenderedMessage(
        title=substitute_text(title, values),
        body_html=markdown_to_html(body, values),
        body_text=substitute_text(body, values),
    )
