"""Fixtures for the integration tests (helpers live in tests/integration/workers.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.workers import (
    REDIS_URL,
    THROWAWAY_REDIS_PORTS,
    ThrowawayRedis,
    Worker,
    alive_workers,
    free_port,
    redis_client,
    require_postgres,
    require_redis,
    web_broker,
    worker_env,
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def _test_failed(request) -> bool:
    return any(
        getattr(request.node, f"rep_{when}", None) and getattr(request.node, f"rep_{when}").failed
        for when in ("setup", "call")
    )


@pytest.fixture(scope="session")
def integration_services(django_db_setup, django_db_blocker):
    """PostgreSQL and Redis are there (else skip, or fail under CI)."""
    with django_db_blocker.unblock():
        require_postgres()
    require_redis()
    return REDIS_URL


@pytest.fixture
def probe_dir(tmp_path_factory, settings) -> Path:
    """A probe directory shared by this test and its workers."""
    path = tmp_path_factory.mktemp("probes")
    settings.PROBE_DIR = path
    return path


@pytest.fixture
def start_worker(request, integration_services, probe_dir, tmp_path) -> Iterator[Callable[..., Worker]]:
    """Factory: start real workers for this test; all are killed at teardown.

    Redis DB is flushed before the first one starts (no worker of another test is alive
    then), so no message of an earlier test is redelivered into this one.
    """
    started: list[Worker] = []
    if not alive_workers:
        redis_client(integration_services).flushdb()

    def start(*, queues: str = "face,default", broker_url: str | None = None, **env: str) -> Worker:
        name = f"kg-{request.node.name[:40]}-{len(started)}-{uuid.uuid4().hex[:6]}"
        worker = Worker(
            name=name,
            log_path=tmp_path / f"worker-{len(started)}.log",
            env=worker_env(broker_url=broker_url or integration_services, probe_dir=probe_dir, **env),
            queues=queues,
        )
        started.append(worker)
        return worker.start()

    yield start
    for worker in started:
        worker.kill()  # nothing to finish gracefully; SIGKILL also closes its DB sessions
    if _test_failed(request):
        for worker in started:
            print(f"\n===== log of worker {worker.name} =====\n{worker.log_text()}")


@pytest.fixture
def throwaway_redis(integration_services, tmp_path) -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis(free_port(THROWAWAY_REDIS_PORTS), tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def hold_file(tmp_path) -> Path:
    """While this file exists, face checks wait in their compute phase (test settings only)."""
    return tmp_path / "hold-face-checks"


@pytest.fixture
def redis_web(settings, integration_services) -> Iterator[str]:
    """This process publishes to the integration Redis."""
    with web_broker(settings, integration_services):
        yield integration_services
