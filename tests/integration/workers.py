"""Real Celery workers on Redis against the PostgreSQL test database.

A worker is a ``celery -A config worker`` subprocess with ``config.settings.test``, the test
database pytest-django created (tests here use ``transaction=True``, so what the web side
writes is committed and visible to it), ``TEST_CELERY_BROKER_URL`` pointing at Redis and the
probe directory shared with the test. The web side (the Django test client) publishes to
the same Redis through :func:`web_broker`.

Needs PostgreSQL (DATABASE_URL) and Redis (TEST_REDIS_URL, default redis://127.0.0.1:6379/15):
skipped with a reason when either is missing, failed instead when CI=true.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connections

from config.celery import app as celery_app
from tests.helpers import IN_CI

REPO = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
#: Throwaway redis-server instances (broker-down tests) use ports from this range.
THROWAWAY_REDIS_PORTS = range(int(os.environ.get("TEST_REDIS_PORT_FIRST", "6390")), 6400)
WORKER_READY_TIMEOUT = 90
alive_workers: list[Worker] = []
_servers: list[ThrowawayRedis] = []


@atexit.register
def _kill_leftovers() -> None:
    """Last resort if a test run is interrupted before fixture teardown: no orphans."""
    for worker in list(alive_workers):
        worker.kill()
    for server in list(_servers):
        server.stop()


def _missing(message: str) -> None:
    if IN_CI:
        pytest.fail(f"{message} (CI=true: integration tests must run)")
    pytest.skip(message)


def require_postgres() -> None:
    if connections["default"].vendor != "postgresql":
        _missing("integration tests need PostgreSQL: set DATABASE_URL=postgres://...")


def redis_client(url: str = REDIS_URL):
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)


def require_redis(url: str = REDIS_URL) -> None:
    try:
        redis_client(url).ping()
    except Exception as exc:  # any failure to talk to Redis means: not available
        _missing(f"integration tests need Redis at {url} (TEST_REDIS_URL): {exc}")


def worker_database_url() -> str:
    """URL of the test database pytest-django created (what the worker must use)."""
    conf = connections["default"].settings_dict
    auth = conf["USER"] or ""
    if conf.get("PASSWORD"):
        auth += f":{conf['PASSWORD']}"
    host = conf.get("HOST") or "127.0.0.1"
    port = f":{conf['PORT']}" if conf.get("PORT") else ""
    return f"postgres://{auth}@{host}{port}/{conf['NAME']}"


def wait_for(predicate: Callable[[], object], *, timeout: float, what: str, worker: Worker | None = None):
    """Poll until ``predicate()`` is truthy; fail with the worker's log otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if worker is not None and not worker.running and not worker.expected_dead:
            pytest.fail(f"worker exited while waiting for {what}:\n{worker.log_text()}")
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout} s waiting for {what}" + (f":\n{worker.log_text()}" if worker else ""))


class Worker:
    """One ``celery worker`` subprocess (its own session, so its whole group can be killed)."""

    def __init__(self, *, name: str, log_path: Path, env: dict[str, str], queues: str, concurrency: int = 1):
        self.name = name
        self.log_path = log_path
        self.env = env
        self.queues = queues
        self.concurrency = concurrency
        self.process: subprocess.Popen | None = None
        self.expected_dead = False

    def start(self) -> Worker:
        command = [
            CELERY,
            "-A",
            "config",
            "worker",
            "-Q",
            self.queues,
            f"--concurrency={self.concurrency}",
            "--pool=prefork",
            "-n",
            f"{self.name}@%h",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            # test-only task that reports on the worker process (tests/integration/worker_probe.py)
            "-I",
            "tests.integration.worker_probe",
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        alive_workers.append(self)
        deadline = time.monotonic() + WORKER_READY_TIMEOUT
        while time.monotonic() < deadline:
            if " ready." in self.log_text():
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        text = self.log_text()
        self.kill()
        pytest.fail(f"celery worker {self.name} did not become ready:\n{text}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def children(self) -> list[int]:
        """Pool process ids (children of the worker's main process)."""
        pid = self.process.pid
        try:
            text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        except FileNotFoundError:
            return []
        return [int(child) for child in text.split()]

    def kill_child(self) -> int:
        """SIGKILL the (single) pool process, as the OOM killer or a segfault would."""
        children = wait_for(self.children, timeout=10, what="a pool process", worker=self)
        os.kill(children[0], signal.SIGKILL)
        return children[0]

    def kill(self) -> None:
        """SIGKILL the worker's whole process group (main process and pool)."""
        self.expected_dead = True
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        if self in alive_workers:
            alive_workers.remove(self)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL whatever is left of the group."""
        self.expected_dead = True
        if self.running:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=15)
        self.kill()


def worker_env(*, broker_url: str, probe_dir: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KINGUARD_TEST_", "CELERY_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": worker_database_url(),
            "TEST_CELERY_BROKER_URL": broker_url,
            "KINGUARD_PROBE_DIR": str(probe_dir),
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "INFO",
        }
    )
    env.update(extra)
    return env


def _reset_publisher(app) -> None:
    """Drop the app's cached broker connections so the next publish builds a fresh one."""
    from kombu import pools

    if app._pool is not None:
        with contextlib.suppress(Exception):
            app._pool.force_close_all()
    app._pool = None
    with contextlib.suppress(AttributeError, KeyError):
        app.__dict__["amqp"]._producer_pool = None
    pools.reset()


@contextlib.contextmanager
def web_broker(settings, url: str) -> Iterator[None]:
    """Make this (web) process publish to ``url`` with the production transport options."""
    from config.settings.base import redis_transport_options

    saved = (celery_app.conf.broker_url, celery_app.conf.broker_transport_options)
    _reset_publisher(celery_app)
    settings.CELERY_BROKER_URL = url
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = redis_transport_options()
    celery_app.conf.broker_url = url
    celery_app.conf.broker_transport_options = redis_transport_options()
    try:
        yield
    finally:
        _reset_publisher(celery_app)
        celery_app.conf.broker_url, celery_app.conf.broker_transport_options = saved


def free_port(candidates: range) -> int:
    for port in candidates:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError(f"no free port in {candidates}")


class ThrowawayRedis:
    """A private redis-server on a port of our range, which a test may stop and restart."""

    def __init__(self, port: int, workdir: Path):
        self.port = port
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            _missing("redis-server is not installed")
        log = open(self.workdir / f"redis-{self.port}.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._log = log
        _servers.append(self)
        wait_for(self._answers, timeout=15, what=f"redis-server on port {self.port}")

    def _answers(self) -> bool:
        try:
            return bool(redis_client(self.url).ping())
        except Exception:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if getattr(self, "_log", None):
            self._log.close()
        self.process = None
        if self in _servers:
            _servers.remove(self)


def assert_no_probe_files(probe_dir: Path) -> None:
    leftovers = sorted(path.name for path in probe_dir.iterdir()) if probe_dir.exists() else []
    assert leftovers == [], f"probe files left behind: {leftovers}"
