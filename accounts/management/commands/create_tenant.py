import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_slug

from accounts.services import TenantExists, TenantSlugReserved, tenant_create


class Command(BaseCommand):
    help = "Create a tenant and print its keys as one JSON object (the secret key is shown only here)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name")
        parser.add_argument("--admin-email")
        parser.add_argument("--admin-password")

    def handle(self, *args: object, **opts: str) -> None:
        slug = opts["slug"]
        try:
            validate_slug(slug)
        except ValidationError as exc:
            raise CommandError(f"{slug!r} is not a valid slug (letters, digits, - and _)") from exc
        if opts["admin_password"] and not opts["admin_email"]:
            raise CommandError("--admin-password needs --admin-email")
        try:
            tenant, key = tenant_create(
                slug=slug,
                name=opts["name"],
                admin_email=opts["admin_email"],
                admin_password=opts["admin_password"],
            )
        except (TenantExists, TenantSlugReserved) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            json.dumps(
                {
                    "tenant": tenant.slug,
                    "secret_key": key.secret,
                    "publishable_key": tenant.publishable_key,
                    "identity_secret": tenant.identity_secret,
                }
            )
        )
