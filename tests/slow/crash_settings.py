"""Settings for the Celery worker of tests/slow/test_worker_crash.py: production settings with
a short Redis visibility timeout, so that a SIGKILLed worker's unacknowledged messages are
redelivered within seconds instead of the default hour."""

from proactive.settings import *  # noqa: F403

CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
