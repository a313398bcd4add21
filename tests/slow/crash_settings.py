"""Settings for the Celery worker of tests/slow/test_worker_crash.py: production settings with
a short Redis visibility timeout, so that a SIGKILLed worker's unacknowledged messages are
redelivered within seconds instead of the default hour."""

from proactive.settings import *  # noqa: F403

# Scan for expired unacked messages every second (kombu's default period is 10 s x 10).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 3,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
    # A worker SIGKILLed while it holds kombu's restore mutex keeps every other worker from
    # restoring messages until the mutex expires (default 300 s): CI once waited out the test's
    # 90 s that way (killed at 3.0 s, 4 chunks done, never finished).
    "unacked_mutex_expire": 2,
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
