"""Settings for the test suite: the machine's PostgreSQL and Redis when they are running,
the embedded defaults when not."""

import os
import socket
import tempfile
from pathlib import Path


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


os.environ.setdefault("ENV_FILE", "")  # a developer's .env must not change what the suite runs against
os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("HTTPS_ONLY", "0")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
if not os.environ.get("DATABASE_URL") and _listening(5432):
    os.environ["DATABASE_URL"] = "postgresql://postgres@127.0.0.1:5432/proactive"
if not os.environ.get("REDIS_URL") and _listening(6379):
    # One Redis database per pytest-xdist worker (gw0 -> 15, gw1 -> 14, ...): a test that clears the
    # cache must not clear another worker's rate-limit windows.
    _worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    os.environ["REDIS_URL"] = f"redis://127.0.0.1:6379/{15 - _worker % 6}"

from proactive.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Production's manifest storage (hashed names, strict), without the compression step: tests/conftest.py
# collects into this per-process folder once per session, so a template naming a missing file or a
# vendored file pointing at one fails here as it would in production.
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"  # noqa: F405
STATIC_ROOT = Path(tempfile.gettempdir()) / f"proactive-test-static-{os.getpid()}"
WHITENOISE_USE_FINDERS = True
