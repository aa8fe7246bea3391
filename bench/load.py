"""Load test: gunicorn + PostgreSQL + Redis + face workers, driven by concurrent guardians.

    .venv/bin/python bench/load.py [--guardians 48] [--concurrency 12] [--face-workers 2]

Starts everything itself on 127.0.0.1 (its own database ``kg_load``, Redis db 8, port 8150),
seeds guardians with authorizations and face templates (from ``KINGUARD_FACES_DIR``), then:

1. baseline: N face checks queued at once with no web traffic -> checks/s of the face workers;
2. load: guardians doing whole lookups over HTTP (sign in, dashboard, start, OTP, face photo,
   poll until the verdict, results) while a staff member browses the admin.

Prints lookups per minute, p50/p95 per step, the error count (must be 0) and the ratio of face
checks/s under web load to the baseline. Every request loop is bounded in count and time and
only talks to 127.0.0.1. Figures from a shared 2-core machine are noisy: compare ratios.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
HOST, PORT = "127.0.0.1", 8150
PASSWORD = "load-test-password-1"  # noqa: S105
DB_NAME = "kg_load"
DEADLINE_SECONDS = 600


def build_env(tmp: Path) -> dict[str, str]:
    from cryptography.fernet import Fernet

    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        SECRET_KEY=secrets.token_urlsafe(64),
        KINGUARD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        KINGUARD_ID_HASH_KEY=secrets.token_urlsafe(32),
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/8",
        CACHE_URL="redis://127.0.0.1:6379/7",
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_SECURE_SSL_REDIRECT="false",  # plain HTTP on loopback only
        KINGUARD_VAR_DIR=str(tmp),
        KINGUARD_PROBE_DIR=str(tmp / "probes"),
        KINGUARD_PRIVATE_STORAGE=str(tmp / "private"),
        KINGUARD_ALLOW_STILL_UPLOAD="true",
        DJANGO_STATIC_ROOT=str(tmp / "static"),
        KINGUARD_ACCESS_LOG_LEVEL="WARNING",
        LOG_LEVEL="WARNING",
        AXES_FAILURE_LIMIT="1000",  # every simulated guardian signs in from 127.0.0.1
    )
    return env


def recreate_database() -> None:
    for sql in (f"DROP DATABASE IF EXISTS {DB_NAME}", f"CREATE DATABASE {DB_NAME}"):
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc", sql], check=True)
    subprocess.run(["redis-cli", "-n", "8", "flushdb"], check=True, capture_output=True)


def seed(guardian_count: int, baseline_count: int) -> dict:
    """Create the people, authorizations, devices and face templates (in this process)."""
    import django

    django.setup()
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from guardians import id_numbers, services
    from guardians.models import Clinic, User
    from lookups.audit import Actor
    from lookups.faces.calibration import default_faces_dir
    from lookups.faces.detection import detect_single_face
    from lookups.faces.images import load_probe_image
    from lookups.services import result_record

    faces = default_faces_dir()
    samples = [detect_single_face(load_probe_image((faces / f"person_01/0{i}.jpg").read_bytes())) for i in (1, 2, 3)]
    clinic = Clinic.objects.create(name="Load Clinic")
    system = Actor.system("bench")
    staff_users = []
    for name, role in (("desk", "staff"), ("boss", "manager")):
        user = User.objects.create_user(username=name, password=PASSWORD, is_superuser=True)
        services.staff_member_add(actor=system, user=user, clinic=clinic, role=role)
        services.totp_device_create(actor=system, user=user, confirmed=True)
        staff_users.append(user)
    desk, boss = (Actor.for_user(u) for u in staff_users)
    serial = iter(range(1, 100_000))

    def person(name: str, **flags):
        first17 = f"110101{1940 + next(serial) % 50:04d}0101{next(serial) % 1000:03d}"
        return services.person_register(
            actor=desk, clinic=clinic, full_name=name, id_number=id_numbers.make_valid(first17), **flags
        )

    guardians = []
    now = django.utils.timezone.now()
    for index in range(guardian_count + baseline_count):
        guardian = person(f"Guardian {index}", is_guardian=True)
        elder = person(f"Elder {index}", is_elder=True)
        user = services.person_create_login(actor=desk, person=guardian, username=f"g{index}", password=PASSWORD)
        services.totp_device_create(actor=system, user=user, confirmed=True)
        authorization = services.authorization_create(
            actor=desk, guardian=guardian, elder=elder, relationship="child", consent_basis="elder_present"
        )
        services.authorization_approve(actor=boss, authorization_id=authorization.pk)
        services.face_consent_record(actor=desk, person=guardian, consent_text="Load test consent.", given_by="person")
        services.face_enroll(actor=desk, person=guardian, samples=samples)
        for days in (3, 40):
            result_record(
                actor=desk,
                elder=elder,
                kind="nucleic_acid",
                sampled_at=now - django.utils.timezone.timedelta(days=days),
                site="Site",
                lab="Lab",
                result="Negative",
                reported_at=now - django.utils.timezone.timedelta(days=days - 1),
            )
        guardians.append({"username": user.username, "elder": str(elder.public_id), "user_id": user.pk})
    keys = {d.user_id: (d.bin_key, d.step, d.t0, d.digits) for d in TOTPDevice.objects.all()}
    staff_device = TOTPDevice.objects.get(user=staff_users[0])
    return {
        "guardians": guardians[:guardian_count],
        "baseline": guardians[guardian_count:],
        "keys": keys,
        "staff": {"username": "desk", "device": staff_device.persistent_id, "user_id": staff_users[0].pk},
    }


def totp_code(key_info, at: float | None = None) -> str:
    from django_otp.oath import TOTP

    key, step, t0, digits = key_info
    totp = TOTP(key, step, t0, digits)
    totp.time = at or time.time()
    return f"{totp.token():0{digits}d}"


class Browser:
    """A minimal HTTP client with its own cookies (the session cookie is Secure in production,
    which cookie jars refuse to send over plain HTTP; here everything stays on loopback)."""

    def __init__(self):
        self.conn = http.client.HTTPConnection(HOST, PORT, timeout=60)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None):
        headers = {"Host": f"{HOST}:{PORT}"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if content_type:
            headers["Content-Type"] = content_type
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = http.client.HTTPConnection(HOST, PORT, timeout=60)
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
        data = response.read()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response.status, response.getheader("Location", ""), data.decode("utf-8", "replace")

    def get(self, path: str):
        return self.request("GET", path)

    def post(self, path: str, fields: dict[str, str], files: dict[str, tuple[str, bytes]] | None = None):
        boundary = uuid.uuid4().hex
        parts = []
        for name, value in fields.items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
        for name, (filename, content) in (files or {}).items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: image/jpeg\r\n\r\n".encode()
                + content
                + b"\r\n"
            )
        parts.append(f"--{boundary}--\r\n".encode())
        return self.request("POST", path, b"".join(parts), f"multipart/form-data; boundary={boundary}")


CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.timings: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []

    def time(self, step: str, started: float) -> None:
        with self.lock:
            self.timings[step].append(time.monotonic() - started)

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def guardian_lookup(guardian: dict, key_info, photo: bytes, rec: Recorder, deadline: float) -> None:
    b = Browser()
    t = time.monotonic()
    status, _, html = b.get("/accounts/login/")
    status, location, _ = b.post(
        "/accounts/login/",
        {"csrfmiddlewaretoken": CSRF.search(html).group(1), "username": guardian["username"], "password": PASSWORD},
    )
    expect(status == 302, f"login {status}")
    rec.time("1 sign in", t)
    t = time.monotonic()
    status, _, html = b.get("/lookups/")
    expect(status == 200 and guardian["elder"] in html, f"dashboard {status}")
    rec.time("2 dashboard", t)
    t = time.monotonic()
    status, location, _ = b.post(
        f"/lookups/start/{guardian['elder']}/", {"csrfmiddlewaretoken": b.cookies["csrftoken"]}
    )
    expect(status == 302 and location.endswith("/otp/"), f"start {status} {location}")
    rec.time("3 start lookup", t)
    lookup_path = location.rsplit("/otp/", 1)[0]
    t = time.monotonic()
    status, location, _ = b.post(
        f"{lookup_path}/otp/", {"csrfmiddlewaretoken": b.cookies["csrftoken"], "token": totp_code(key_info)}
    )
    expect(status == 302 and location.endswith("/face/"), f"otp {status} {location}")
    rec.time("4 one-time code", t)
    t = time.monotonic()
    status, location, _ = b.post(
        f"{lookup_path}/face/", {"csrfmiddlewaretoken": b.cookies["csrftoken"]}, {"photo": ("me.jpg", photo)}
    )
    expect(status == 302 and location.endswith("/wait/"), f"face upload {status} {location}")
    rec.time("5 face upload", t)
    t = time.monotonic()
    while True:
        status, _, body = b.get(f"{lookup_path}/status.json")
        expect(status == 200, f"status {status}")
        if '"done": true' in body:
            break
        expect(time.monotonic() < deadline, "no verdict before the deadline")
        time.sleep(0.25)
    expect('"granted"' in body, f"verdict {body}")
    rec.time("6 face verdict (queue + check)", t)
    t = time.monotonic()
    status, _, html = b.get(f"{lookup_path}/results/")
    expect(status == 200 and "Negative" in html, f"results {status}")
    rec.time("7 results", t)


def staff_browsing(staff: dict, key_info, rec: Recorder, stop: threading.Event, deadline: float) -> None:
    b = Browser()
    status, _, html = b.get("/admin/login/")
    status, location, _ = b.post(
        "/admin/login/",
        {
            "csrfmiddlewaretoken": CSRF.search(html).group(1),
            "username": staff["username"],
            "password": PASSWORD,
            "otp_device": staff["device"],
            "otp_token": totp_code(key_info),
            "next": "/admin/",
        },
    )
    if status != 302:
        rec.error(f"staff admin login {status}")
        return
    pages = ["/admin/guardians/person/", "/admin/guardians/authorization/", "/admin/lookups/auditevent/"]
    for index in range(10_000):
        if stop.is_set() or time.monotonic() > deadline:
            return
        t = time.monotonic()
        status, _, _ = b.get(pages[index % len(pages)])
        if status != 200:
            rec.error(f"staff page {pages[index % len(pages)]} {status}")
        rec.time("staff admin page", t)


def wait_ready(timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            conn = http.client.HTTPConnection(HOST, PORT, timeout=5)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit("the stack did not become ready (see logs in the temp folder)")


def baseline_rate(entries: list[dict], keys, photo: bytes) -> tuple[float, float]:
    """Queue one check per baseline guardian at once (no web traffic); checks/s until all done."""
    from guardians.models import User
    from lookups import services
    from lookups.audit import Actor
    from lookups.models import FaceCheck

    check_ids = []
    for entry in entries:
        user = User.objects.get(pk=entry["user_id"])
        actor = Actor.for_user(user)
        lookup = services.lookup_start(actor=actor, elder_public_id=entry["elder"])
        services.lookup_verify_otp(actor=actor, lookup_id=lookup.pk, token=totp_code(keys[user.pk]))
        check_ids.append(services.lookup_submit_face(actor=actor, lookup_id=lookup.pk, images=[photo]).pk)
    end = time.monotonic() + DEADLINE_SECONDS
    while FaceCheck.objects.filter(pk__in=check_ids).exclude(state="done").exists():
        if time.monotonic() > end:
            raise SystemExit("baseline checks did not finish")
        time.sleep(0.2)
    checks = FaceCheck.objects.filter(pk__in=check_ids)
    first = min(c.created_at for c in checks)
    last = max(c.finished_at for c in checks)
    return len(check_ids) / (last - first).total_seconds(), statistics.mean(c.total_ms for c in checks)


def load_rate(since) -> tuple[int, float, float]:
    from lookups.models import FaceCheck

    checks = list(FaceCheck.objects.filter(created_at__gte=since, state="done"))
    if not checks:
        return 0, 0.0, 0.0
    first = min(c.created_at for c in checks)
    last = max(c.finished_at for c in checks)
    return len(checks), len(checks) / (last - first).total_seconds(), statistics.mean(c.total_ms for c in checks)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--guardians", type=int, default=48)
    parser.add_argument("--baseline", type=int, default=24)
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument("--gunicorn-workers", type=int, default=3)
    parser.add_argument("--face-workers", type=int, default=2)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="kinguard-load-"))
    env = build_env(tmp)
    os.environ.update(env)
    recreate_database()
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO, env=env, check=True)
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=REPO, env=env, check=True)
    print(f"seeding {args.guardians + args.baseline} guardians ...", flush=True)
    data = seed(args.guardians, args.baseline)
    photo = (Path(env.get("KINGUARD_FACES_DIR", REPO.parent / "shared" / "faces")) / "person_01/04.jpg").read_bytes()

    processes = []
    logs = []

    def start(name: str, command: list[str]) -> None:
        log = open(tmp / f"{name}.log", "w")  # noqa: SIM115 - closed in finally
        logs.append(log)
        processes.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))

    bin_dir = Path(sys.executable).parent
    try:
        start(
            "gunicorn",
            [
                str(bin_dir / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "config.wsgi",
                "--bind", f"{HOST}:{PORT}", "--workers", str(args.gunicorn_workers),
            ],
        )  # fmt: skip
        for index in range(args.face_workers):
            start(
                f"face-worker-{index}",
                [
                    str(bin_dir / "celery"), "-A", "config", "worker", "-Q", "face", "--concurrency=1",
                    "--prefetch-multiplier=1", "-O", "fair", f"--hostname=face{index}@bench", "--loglevel=WARNING",
                ],
            )  # fmt: skip
        wait_ready()
        print("stack ready; baseline (no web traffic) ...", flush=True)
        base, base_ms = baseline_rate(data["baseline"], data["keys"], photo)

        from django.utils import timezone

        rec = Recorder()
        stop = threading.Event()
        deadline = time.monotonic() + DEADLINE_SECONDS
        pending = list(data["guardians"])
        pending_lock = threading.Lock()

        def worker_loop():
            while True:
                with pending_lock:
                    if not pending:
                        return
                    guardian = pending.pop()
                try:
                    guardian_lookup(guardian, data["keys"][guardian["user_id"]], photo, rec, deadline)
                except Exception as exc:  # noqa: BLE001 - every failure is counted, none hidden
                    rec.error(f"{guardian['username']}: {exc}")

        staff_thread = threading.Thread(
            target=staff_browsing, args=(data["staff"], data["keys"][data["staff"]["user_id"]], rec, stop, deadline)
        )
        since = timezone.now()
        started = time.monotonic()
        threads = [threading.Thread(target=worker_loop) for _ in range(args.concurrency)]
        staff_thread.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        stop.set()
        staff_thread.join()
        checks, under_load, load_ms = load_rate(since)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs:
            log.close()

    done = len(rec.timings["7 results"])
    print()
    print(f"guardians: {args.guardians}  concurrency: {args.concurrency}  gunicorn workers: {args.gunicorn_workers}")
    print(f"face workers: {args.face_workers}  logs: {tmp}")
    print(f"lookups completed: {done} in {elapsed:.1f} s  ->  {done / elapsed * 60:.1f} lookups/minute")
    print(f"{'step':<34} {'n':>5} {'p50 ms':>9} {'p95 ms':>9}")
    for step in sorted(rec.timings):
        values = rec.timings[step]
        p50, p95 = percentile(values, 0.5) * 1000, percentile(values, 0.95) * 1000
        print(f"{step:<34} {len(values):>5} {p50:>9.0f} {p95:>9.0f}")
    print(f"errors: {len(rec.errors)}")
    for message in rec.errors[:10]:
        print(f"  {message}")
    # Throughput under load is limited by how fast guardians arrive; the workers' capacity
    # (checks/s they could do, from the CPU time each check took) shows what web traffic costs them.
    capacity_base = args.face_workers * 1000 / base_ms
    capacity_load = args.face_workers * 1000 / load_ms
    print(f"face checks/s, queue saturated, no web traffic: {base:.2f} (capacity {capacity_base:.2f}/s)")
    print(f"face checks/s during the web load:            {under_load:.2f} ({checks} checks, arrival-limited)")
    print(f"face worker capacity during the web load:     {capacity_load:.2f}/s")
    print(f"ratio of face checks/s under load to no traffic (capacity): {capacity_load / capacity_base:.2f}")
    sys.exit(1 if rec.errors else 0)


if __name__ == "__main__":
    main()
