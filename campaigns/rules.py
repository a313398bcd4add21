"""Field rules for playbooks, campaigns and incidents: one home used by services, API and forms."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from campaigns.conditions import (
    ConditionError,
    parse_condition,
)
from campaigns.models import Outreach, Priority
from campaigns.rendering import unknown_variables

PRIORITIES = {label: value for value, label in Priority.choices}


SAMPLE_SIZE = 10

# An action's text limits and its call-to-action URL (an http(s) URL with a host), published as
# they are in the OpenAPI schema (campaigns.api_schema).
# Python's `\s` spelled out, so that a pattern means the same in ECMA 262 (the schema's dialect).
WHITESPACE = r"[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
TEXT_LIMITS = {"title": 200, "body": 20000, "cta_label": 100}
CTA_URL_MAX = 500
NON_BLANK_PATTERN = "[^" + WHITESPACE[1:]
CTA_URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@\[\]" + WHITESPACE[1:-1] + r"]+(?:[/?#][\s\S]*)?$"
_CTA_URL_RE = re.compile(CTA_URL_PATTERN)


def action_validate(data: Any, path: str = "action") -> dict[str, Any]:
    """Normalise an action; raises ConditionError naming the bad field (`action.title: ...`)."""
    if not isinstance(data, dict):
        raise ConditionError(path, "expected an object with channel, title, body, ...")
    known = {"channel", "title", "body", "cta_label", "cta_url", "requires_review", "priority"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConditionError(path, f"unknown keys {unknown}")
    channel = data.get("channel", "in_app")
    if channel not in Outreach.Channel.values:
        raise ConditionError(
            f"{path}.channel", f"{channel!r} is not one of {', '.join(Outreach.Channel.values)}"
        )
    out: dict[str, Any] = {"channel": channel}
    for name, limit in TEXT_LIMITS.items():
        required = name == "title"
        value = data.get(name, "")
        if not isinstance(value, str):
            raise ConditionError(f"{path}.{name}", "expected a string")
        if required and not value.strip():
            raise ConditionError(f"{path}.{name}", "required")
        if len(value) > limit:
            raise ConditionError(f"{path}.{name}", f"at most {limit} characters")
        _check_variables(value, f"{path}.{name}")
        out[name] = value
    url = data.get("cta_url", "")
    if not isinstance(url, str) or len(url) > CTA_URL_MAX:
        raise ConditionError(f"{path}.cta_url", f"expected a URL of at most {CTA_URL_MAX} characters")
    if url and not _CTA_URL_RE.search(url):
        raise ConditionError(f"{path}.cta_url", f"{url!r} is not an http(s) URL with a host")
    if bool(url) != bool(out["cta_label"]):
        raise ConditionError(f"{path}.cta_url", "cta_label and cta_url go together")
    out["cta_url"] = url
    review = data.get("requires_review", False)
    if not isinstance(review, bool):
        raise ConditionError(f"{path}.requires_review", "expected true or false")
    out["requires_review"] = review
    priority = data.get("priority", "normal")
    if not isinstance(priority, str) or priority not in PRIORITIES:
        raise ConditionError(f"{path}.priority", f"{priority!r} is not one of {', '.join(PRIORITIES)}")
    out["priority"] = priority
    return out


def _check_variables(text: str, path: str) -> None:
    bad = unknown_variables(text)
    if bad:
        raise ConditionError(
            path,
            f"unknown variable customer.{bad[0]}: use customer.name, first_name, email, external_id "
            "or attributes.KEY",
        )


@dataclass(frozen=True)
class Bound:
    """An integer field's allowed range: the API serializers, the admin forms and the services
    all read it from here."""

    field: str
    lo: int
    hi: int

    def check(self, value: Any) -> int:
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ConditionError(
                self.field, f"expected a whole number between {self.lo} and {self.hi}"
            ) from None
        if not self.lo <= number <= self.hi:
            raise ConditionError(self.field, f"between {self.lo} and {self.hi}")
        return number


COOLDOWN_DAYS = Bound("cooldown_days", 1, 365)
HOLDOUT_PERCENT = Bound("holdout_percent", 0, 50)


PLAYBOOK_FIELDS = (
    "name",
    "enabled",
    "trigger",
    "action",
    "cooldown_days",
    "holdout_percent",
    "review_expiry_hours",
)


def playbook_fields_clean(data: dict[str, Any]) -> dict[str, Any]:
    clean = dict(data)
    if "trigger" in clean:
        parse_condition(clean["trigger"], "trigger")
    if "action" in clean:
        clean["action"] = action_validate(clean["action"])
    for bound in (COOLDOWN_DAYS, HOLDOUT_PERCENT):
        if bound.field in clean:
            clean[bound.field] = bound.check(clean[bound.field])
    return clean
