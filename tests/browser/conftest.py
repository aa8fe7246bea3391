"""Browser tests: Playwright driving Debian's chromium against pytest-django's live server.

* Skips with a reason when playwright, chromium, axe-core or the face set is missing, except
  under CI=true, where each of those is a failure.
* ``browser_for(clip=..., fake_ui=...)`` launches chromium (never ``playwright install``) with
  the fake-camera flags; one browser per (clip, fake_ui) for the session.
* ``face_worker`` starts a real Celery worker (``-Q face,default``) on Redis DB 14 against the
  PostgreSQL test database; ``worker_broker`` points this process's Celery app at the same
  broker for one test. A worker needs a database another process can open, so the flows that
  use it need PostgreSQL (they skip on SQLite; CI runs PostgreSQL and Redis).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings

from guardians import services as guardian_services
from lookups.audit import Actor
from tests import factories
from tests.helpers import IN_CI, face_bytes, require_faces

# Playwright's sync API runs an event loop in this thread; Django's ORM refuses to run in a
# thread with a running loop unless told it is safe (it is: the loop is Playwright's own).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("KINGUARD_CHROMIUM", "/usr/bin/chromium"))
AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "test-artifacts"
WORKER_BROKER_URL = os.environ.get("TEST_BROWSER_BROKER_URL", "redis://127.0.0.1:6379/14")
PASSWORD = "correct horse battery"
BASE_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 360, "height": 740}


def missing(reason: str):
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def clip_path(name: str) -> Path:
    """Absolute path of a fake-webcam clip (a relative or missing path gives NotFoundError)."""
    path = (require_faces() / "camera" / name).resolve()
    if not path.is_file():
        missing(f"camera clip {path} not found")
    return path


@pytest.fixture(scope="session")
def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (pip install -r requirements.txt)")
    if not CHROMIUM.is_file():
        missing(f"chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser_for(_playwright):
    """Launch (once per configuration) chromium with a fake camera playing ``clip``."""
    browsers = {}

    def launch(clip: str | None = "person_01.y4m", *, fake_ui: bool = True):
        key = (clip, fake_ui)
        if key not in browsers:
            args = [*BASE_ARGS, "--use-fake-device-for-media-stream"]
            if fake_ui:
                args.append("--use-fake-ui-for-media-stream")
            if clip:
                args.append(f"--use-file-for-fake-video-capture={clip_path(clip)}")
            browsers[key] = _playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        return browsers[key]

    yield launch
    for browser in browsers.values():
        with contextlib.suppress(Exception):
            browser.close()


@pytest.fixture
def new_page(browser_for, live_server):
    """``new_page(clip=..., fake_ui=..., permissions=...)``: a 360 px phone-sized page."""
    contexts = []

    def make(clip: str | None = "person_01.y4m", *, fake_ui: bool = True, permissions=None, locale: str = "en-US"):
        browser = browser_for(clip, fake_ui=fake_ui)
        context = browser.new_context(
            viewport=VIEWPORT,
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            locale=locale,
            timezone_id="Asia/Shanghai",
            base_url=live_server.url,
        )
        if permissions is not None:
            context.grant_permissions(permissions, origin=live_server.url)
        context.set_default_timeout(20_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        with contextlib.suppress(Exception):
            context.close()


def shot(page, name: str) -> None:
    """Full-page screenshot under test-artifacts/ (gitignored) for a person to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def axe_violations(page) -> list[dict]:
    """Run axe-core in the page; return its serious and critical violations."""
    if not AXE_JS.is_file():
        missing(f"axe-core not found at {AXE_JS} (run `npm ci` or `make install`)")
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # Evaluated through the DevTools protocol: the page's CSP (no inline scripts) stays on.
        page.evaluate(AXE_JS.read_text(encoding="utf-8") + "\n;undefined")
    result = page.evaluate("async () => await window.axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5], "help": v["help"]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def assert_accessible(page, name: str) -> None:
    violations = axe_violations(page)
    assert violations == [], f"axe found serious/critical violations on {name}: {violations}"


# --- people -------------------------------------------------------------------------------


@pytest.fixture
def family(transactional_db, live_server):
    """A clinic, a guardian (login, TOTP, face from person_01/01-03) authorized for an elder."""
    require_faces()
    clinic = factories.ClinicFactory(name="Riverside Community Clinic", phone="010-6000-1234")
    staff = factories.make_staff(clinic)
    manager = factories.make_staff(clinic, role="manager")
    elder = factories.make_person(staff, clinic, "Zhang Xiuying", elder=True, login=True)
    guardian = factories.make_person(staff, clinic, "Li Wei", guardian=True, login=True)
    device = guardian_services.totp_device_create(actor=Actor.system("test"), user=guardian.user, confirmed=True)
    images = [face_bytes(f"person_01/0{i}.jpg") for i in (1, 2, 3)]
    factories.enroll_face(staff, guardian, images)
    authorization = factories.make_active_authorization(staff, manager, guardian, elder)
    results = [
        factories.make_result(staff, elder, result="Negative"),
        factories.make_result(staff, elder, kind="antigen", result="Negative"),
    ]

    class Family:
        pass

    family = Family()
    family.clinic, family.staff, family.manager = clinic, staff, manager
    family.elder, family.guardian, family.device = elder, guardian, device
    family.authorization, family.results = authorization, results
    return family


@pytest.fixture
def liveness_on(settings):
    """Prompted liveness as production runs it, with the challenge fixed to what the genuine
    clip performs (``KINGUARD_FACE_CHALLENGE_FIXED``: tests only; production settings refuse
    it). The live server runs in this process, so ``settings`` reaches it; the worker decides
    with the challenge stored on the check and needs no setting."""
    from tests.browser.clips import GENUINE_DOES

    settings.KINGUARD_FACE_LIVENESS = True
    settings.KINGUARD_FACE_CHALLENGE_FIXED = GENUINE_DOES
    return settings


def enroll_guardian_from_live_clip(family, clip: str, numbers) -> None:
    """Replace the guardian's face template by one built from frames of a live clip."""
    from tests.browser.clips import enrollment_images

    factories.enroll_face(family.staff, family.guardian, enrollment_images(clip, numbers))


@pytest.fixture
def live_family(family, liveness_on):
    """``family`` with liveness on and the guardian enrolled from the genuine clip's person
    (frames outside the camera loop): the camera clip is the genuine side."""
    from tests.browser.clips import GENUINE_ENROLL

    enroll_guardian_from_live_clip(family, *GENUINE_ENROLL)
    return family


def log_in(page, username: str, password: str = PASSWORD) -> None:
    page.goto("/accounts/login/")
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(password)
    page.locator("form[action$='/accounts/login/'] button[type=submit]").click()
    page.wait_for_url(re.compile(r"/lookups/$"))


# --- a real worker ------------------------------------------------------------------------


def _redis_ready(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False


@pytest.fixture(scope="session")
def face_worker(django_db_setup, django_db_blocker):
    """A real ``celery -A config worker -Q face,default`` on Redis, using the test database."""
    from django.db import connection

    if connection.vendor != "postgresql":
        missing("the real-worker browser flows need PostgreSQL (set DATABASE_URL); SQLite's test DB is in memory")
    if not _redis_ready(WORKER_BROKER_URL):
        missing(f"Redis is not reachable at {WORKER_BROKER_URL}")
    import redis

    redis.Redis.from_url(WORKER_BROKER_URL).flushdb()  # our own DB number only: stale messages
    db = connection.settings_dict
    user = quote(db.get("USER") or "", safe="")
    password = f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else ""
    database_url = f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url,
        "TEST_CELERY_BROKER_URL": WORKER_BROKER_URL,
        "KINGUARD_FACES_DIR": str(settings.KINGUARD_FACES_DIR),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / "browser-worker.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed in teardown
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            "face,default",
            "--concurrency=1",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"browser-tests-{os.getpid()}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"the Celery worker exited with {process.returncode}: {log_path.read_text()[-2000:]}")
            if " ready." in log_path.read_text():
                break
            time.sleep(0.3)
        else:
            pytest.fail(f"the Celery worker did not start in 90 s: {log_path.read_text()[-2000:]}")
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


@pytest.fixture
def worker_broker(face_worker):
    """Point this process's Celery app (the live server publishes from it) at the worker's broker."""
    from config.celery import app

    def switch(url: str, options: dict) -> None:
        app.conf.broker_url = url
        app.conf.broker_transport_options = options
        # Drop pooled connections to the previous broker (what Celery does after a fork).
        app._pool = None
        app.amqp._producer_pool = None

    previous = (app.conf.broker_url, dict(app.conf.broker_transport_options or {}))
    switch(WORKER_BROKER_URL, {})
    yield face_worker
    switch(*previous)


def run_check_in_process(page, lookup) -> str:
    """Run the queued face check here (the worker's service), with the page's timers paused.

    Used where no worker is wanted (SQLite, or to hold the progress page still): the page's
    polling is paused and the network idle before this thread touches the database.
    """
    from lookups import services
    from lookups.models import FaceCheck

    page.clock.pause_at(page.evaluate("Date.now()") + 50)
    page.wait_for_load_state("networkidle")
    check = lookup.face_checks.get(state=FaceCheck.State.QUEUED)
    outcome = services.face_check_run(check_id=check.pk)
    page.clock.resume()
    return outcome
