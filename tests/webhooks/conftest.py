from __future__ import annotations

import pytest

from tests.webhooks.receiver import Receiver


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def local_webhooks(settings):
    """Local receivers allowed, retries fast enough for a test, the sweeper without grace."""
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    settings.WEBHOOKS_RETRY_BASE_SECONDS = 0.2
    settings.WEBHOOKS_SWEEP_GRACE_SECONDS = 0
    settings.WEBHOOKS_TIMEOUT_SECONDS = 2
    return settings
