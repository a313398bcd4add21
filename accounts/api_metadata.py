"""The OPTIONS answer of every API view (REST_FRAMEWORK["DEFAULT_METADATA_CLASS"]).

Its own module: DRF imports it while defining APIView, before accounts.api_base can load."""

from __future__ import annotations

from typing import Any

from rest_framework.metadata import SimpleMetadata
from rest_framework.request import Request


class PlainMetadata(SimpleMetadata):
    """OPTIONS: name, description, renders and parses; no serializer-derived `actions` (the
    OpenAPI schema at /api/schema/ describes the bodies), so views of any shape answer it."""

    def determine_metadata(self, request: Request, view: Any) -> dict:
        return {
            "name": view.get_view_name(),
            "description": view.get_view_description(),
            "renders": [renderer.media_type for renderer in view.renderer_classes],
            "parses": [parser.media_type for parser in view.parser_classes],
        }
