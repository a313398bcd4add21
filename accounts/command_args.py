"""The `--tenant` and `--as-of` arguments that management commands share, with one set of errors."""

from __future__ import annotations

from datetime import datetime

from django.core.management.base import CommandError, CommandParser

from accounts.models import Tenant


def add_tenant_as_of(parser: CommandParser) -> None:
    parser.add_argument("--tenant", required=True, help="tenant slug")
    parser.add_argument("--as-of", help="ISO 8601 time with an offset (default: now)")


def tenant_as_of(opts: dict[str, object]) -> tuple[Tenant, datetime | None]:
    """The tenant named by `--tenant` and the `--as-of` time (None: now); CommandError otherwise."""
    tenant = Tenant.objects.filter(slug=opts["tenant"]).first()
    if tenant is None:
        raise CommandError(f"no tenant with slug {opts['tenant']!r}")
    if not opts.get("as_of"):
        return tenant, None
    try:
        as_of = datetime.fromisoformat(str(opts["as_of"]))
    except ValueError:
        raise CommandError(f"--as-of {opts['as_of']!r} is not an ISO 8601 time") from None
    if as_of.tzinfo is None:
        raise CommandError("--as-of needs an offset, e.g. 2025-01-31T00:00:00+00:00")
    return tenant, as_of
