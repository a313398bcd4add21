"""Turn an insight into a playbook: the insight's condition as the trigger, a message suited to the
kind of pattern, disabled until an admin has reviewed it."""

from __future__ import annotations

from typing import Any

from accounts.models import Tenant, User
from campaigns.conditions import ConditionError
from campaigns.models import Playbook
from campaigns.playbooks import playbook_create
from proactive.insights.words import PatternKind, condition_phrase
from proactive.models import Insight

NAME_LIMIT = 200

TEMPLATES: dict[str, dict[str, Any]] = {
    PatternKind.ERRORS: {
        "name": "Troubleshooting",
        "title": "Running into errors? Here is how to fix them",
        "body": (
            "Hi {{ customer.first_name }}, we noticed a few errors on your account recently. "
            "Our troubleshooting guide walks through the usual causes and fixes, and our team is "
            "one reply away if they persist."
        ),
        "cta_label": "Open the troubleshooting guide",
    },
    PatternKind.ONBOARDING: {
        "name": "Setup help",
        "title": "Need a hand finishing your setup?",
        "body": (
            "Hi {{ customer.first_name }}, it looks like setup is not finished yet. The next steps "
            "take a few minutes, and we are happy to walk you through them."
        ),
        "cta_label": "Continue setup",
    },
    PatternKind.DECLINE: {
        "name": "Re-engagement",
        "title": "Anything getting in your way?",
        "body": (
            "Hi {{ customer.first_name }}, we have not seen you as much lately. If something is not "
            "working the way you need, tell us: here is what is new and what could help."
        ),
        "cta_label": "See what's new",
    },
    PatternKind.GENERIC: {
        "name": "Check-in",
        "title": "Can we help with anything?",
        "body": (
            "Hi {{ customer.first_name }}, we are checking in to make sure everything works for you. "
            "Reply any time if something is unclear."
        ),
        "cta_label": "",
    },
}


def insight_action(insight: Insight) -> dict[str, Any]:
    """The default message for the insight's kind of pattern; the admin edits it before enabling."""
    template = TEMPLATES.get(insight.kind, TEMPLATES[PatternKind.GENERIC])
    action: dict[str, Any] = {
        "channel": "in_app",
        "title": template["title"],
        "body": template["body"],
        "requires_review": True,
        "priority": "normal",
    }
    if template["cta_label"]:
        # Where the call to action points is the tenant's to fill in; a placeholder URL would be sent.
        action["body"] += f"\n\n**{template['cta_label']}** from your account's help menu."
    return action


def _unique_name(tenant: Tenant, wanted: str) -> str:
    taken = set(
        Playbook.objects.for_tenant(tenant)
        .filter(name__startswith=wanted[:150])
        .values_list("name", flat=True)
    )
    if wanted not in taken:
        return wanted
    n = 2
    while f"{wanted[:180]} ({n})" in taken:
        n += 1
    return f"{wanted[:180]} ({n})"


def default_name(insight: Insight) -> str:
    template = TEMPLATES.get(insight.kind, TEMPLATES[PatternKind.GENERIC])
    text = f"{template['name']}: customers {condition_phrase(insight.condition)}".replace("`", "")
    return text if len(text) <= NAME_LIMIT - 10 else text[: NAME_LIMIT - 11] + "…"


def playbook_from_insight(
    *,
    tenant: Tenant,
    insight: Insight,
    name: str | None = None,
    action: dict[str, Any] | None = None,
    actor: User | None = None,
) -> Playbook:
    """A new disabled playbook triggered by the insight's condition (validated like any playbook).

    An explicit `name` that is taken is an error; the default name gets a number instead."""
    if name is not None:
        if Playbook.objects.for_tenant(tenant).filter(name=name).exists():
            raise ConditionError("name", "a playbook with this name exists")
    else:
        name = _unique_name(tenant, default_name(insight))
    data = {
        "name": name,
        "enabled": False,
        "trigger": insight.condition,
        "action": action if action is not None else insight_action(insight),
        "cooldown_days": max(7, insight.insight_run.horizon_days),
    }
    return playbook_create(tenant=tenant, data=data, actor=actor)
