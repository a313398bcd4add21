"""Shared bench bootstrap: Django settings from the environment (DATABASE_URL, DEBUG=1)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def django_setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proactive.settings")
    os.environ.setdefault("DEBUG", "1")
    import django

    django.setup()
