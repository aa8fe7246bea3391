"""A real face worker beats into a shared Redis cache; a default-only worker does not."""

import pytest
from django.core.cache.backends.redis import RedisCache

from config import worker_heartbeat
from tests.integration.workers import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_real_face_worker_is_seen_by_heartbeat_and_leaves_on_warm_shutdown(start_worker, integration_services):
    store = RedisCache(integration_services, {})
    default_only = start_worker(queues="default", TEST_CACHE_URL=integration_services)
    face = start_worker(queues="face,default", TEST_CACHE_URL=integration_services)
    wait_for(lambda: worker_heartbeat.face_workers_alive(store) == 1, timeout=20, what="a heartbeat", worker=face)
    assert default_only.running
    face.stop()
    wait_for(lambda: worker_heartbeat.face_workers_alive(store) == 0, timeout=20, what="the face worker to leave")
