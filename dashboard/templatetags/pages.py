from __future__ import annotations

from datetime import UTC, datetime

from django import template
from django.template import Context
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince, timeuntil

from proactive import humanize

register = template.Library()


@register.filter
def pct(value: float | None, digits: int = 1) -> str:
    """0.0345 -> "3.5%"; None -> "—"."""
    if value is None or value == "":
        return "—"
    return f"{float(value) * 100:.{int(digits)}f}%"


@register.filter
def metric_words(name: str) -> str:
    """count(error.*, 7) -> "errors in the last 7 days" (proactive.humanize)."""
    return humanize.metric_words(str(name))


@register.simple_tag
def risk_points(score: float | None, contribution: float | None) -> str:
    """A log-odds contribution as '+12 points of risk' for a customer at `score`."""
    return humanize.risk_points_words(score, contribution)


@register.filter
def ago(when: datetime | None, now: datetime | None = None) -> str:
    """ "3 hours ago", or "just now" under a minute (Django's timesince says "0 minutes")."""
    if not isinstance(when, datetime):
        return "—"
    now = now or timezone.now()
    if abs((now - when).total_seconds()) < 60:
        return "just now"
    return f"{timesince(when, now)} ago"


@register.filter
def waited(since: datetime | None, now: datetime | None = None) -> str:
    """How long something has waited: "2 hours, 5 minutes", or "under a minute"."""
    if not isinstance(since, datetime):
        return "—"
    now = now or timezone.now()
    if (now - since).total_seconds() < 60:
        return "under a minute"
    return timesince(since, now)


@register.simple_tag(takes_context=True)
def as_of(context: Context, when: datetime | str | None, prefix: str = "as of") -> str:
    """How old a stored figure is: "as of 12 minutes ago", the exact time (in the tenant's zone)
    in the title. Every page showing numbers from a snapshot or a past run says it this way."""
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when)
        except ValueError:
            when = None
    if not isinstance(when, datetime):
        return format_html('<span class="as-of none">not computed yet</span>')
    tenant = context.get("current_tenant")
    zone = tenant.tz if tenant is not None else UTC
    local = timezone.localtime(when, zone)
    now = timezone.now()
    if abs((now - when).total_seconds()) < 60:
        age = "just now"
    elif when > now:
        age = f"in {timeuntil(when, now, depth=1)}"
    else:
        age = f"{timesince(when, now, depth=1)} ago"
    return format_html(
        '<time class="as-of" datetime="{}" title="{} {}">{}</time>',
        when.isoformat(),
        local.strftime("%Y-%m-%d %H:%M:%S"),
        str(zone),
        f"{prefix} {age}" if prefix else age,
    )
