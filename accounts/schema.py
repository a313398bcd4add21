"""OpenAPI descriptions of our authentication schemes (loaded by drf-spectacular)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ServerKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api_auth.ServerKeyAuthentication"
    name = "serverKey"

    def get_security_definition(self, auto_schema: object) -> dict:
        return {"type": "http", "scheme": "bearer", "description": "A tenant's secret server key (sk_...)."}


class WriteKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api_auth.WriteKeyAuthentication"
    name = "segmentWriteKey"

    def get_security_definition(self, auto_schema: object) -> dict:
        return {
            "type": "http",
            "scheme": "basic",
            "description": "Segment's write key: the server key as the Basic user name, no password.",
        }
