"""Settings for the test suite: the machine's PostgreSQL and Redis when they are running,
the embedded defaults when not."""

import os
import socket


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("HTTPS_ONLY", "0")
os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
if not os.environ.get("DATABASE_URL") and _listening(5432):
    os.environ["DATABASE_URL"] = "postgresql://postgres@127.0.0.1:5432/proactive"
if not os.environ.get("REDIS_URL") and _listening(6379):
    os.environ["REDIS_URL"] = "redis://127.0.0.1:6379/15"

from proactive.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
WHITENOISE_USE_FINDERS = True
