"""Plain test helpers (no fixtures: those live in the conftest files).

Sign-in (an OTP-verified session), TOTP codes, the guardian's lookup steps through the real
URLs, the face set, small images and request builders, shared by the test modules.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.http import HttpRequest
from django.test import Client, RequestFactory
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from PIL import Image

from config.middleware import SESSION_OTP_AT
from guardians import crypto
from guardians import services as guardian_services
from lookups import services
from lookups.audit import Actor
from lookups.models import FaceCheck, LookupRequest

IN_CI = os.environ.get("CI", "").lower() == "true"


# --- environment --------------------------------------------------------------------------


def faces_dir() -> Path:
    return Path(settings.KINGUARD_FACES_DIR)


def require_faces() -> Path:
    """The labeled face set, or skip (fail under CI=true, where it must be present)."""
    root = faces_dir()
    if not (root / "manifest.csv").is_file():
        message = f"face set not found at {root} (set KINGUARD_FACES_DIR)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return root


def face_bytes(relative: str) -> bytes:
    return (require_faces() / relative).read_bytes()


def require_face_files(*relative: str) -> Path:
    """The face set's root if these files are in it, or skip (fail under CI=true)."""
    root = faces_dir()
    missing = [r for r in relative if not (root / r).is_file()]
    if missing:
        message = f"{', '.join(missing)} not found under {root} (set KINGUARD_FACES_DIR)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return root


def live_window(clip: str, start: int, n: int = 35) -> list:
    """Frames ``start`` .. ``start + n`` of ``live/<clip>``, decoded as an upload is."""
    from lookups.faces.images import load_probe_image

    files = sorted((require_face_files(f"live/{clip}/001.jpg") / "live" / clip).glob("*.jpg"))[start : start + n]
    return [load_probe_image(f.read_bytes()) for f in files]


def require_postgresql(message: str = "needs PostgreSQL (set DATABASE_URL=postgres://...)") -> None:
    """Skip on SQLite (fail under CI=true, where the suite must run on PostgreSQL)."""
    if connection.vendor != "postgresql":
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


# --- signing in ---------------------------------------------------------------------------


def totp_now(device: TOTPDevice, offset_steps: int = 0) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + offset_steps * device.step
    return f"{totp.token():0{device.digits}d}"


def device_of(user) -> TOTPDevice:
    """The user's confirmed TOTP device, created through the service (audited) if none."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = guardian_services.totp_device_create(actor=Actor.system("test"), user=user, confirmed=True)
    return device


def sign_in_verified(client: Client, user, device: TOTPDevice) -> Client:
    """Sign ``client`` in as ``user``, the session verified with ``device`` just now."""
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session[SESSION_OTP_AT] = time.time()  # as right after signing in with a code
    session.save()
    return client


def verified_client(user) -> Client:
    """A new client signed in as ``user`` whose session was verified with their TOTP device."""
    return sign_in_verified(Client(), user, device_of(user))


def otp_login(client: Client, user) -> None:
    """Sign ``user`` in with a verified OTP device, as the admin site requires (the device,
    if it must be made, is created directly: no audit event of its own)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or TOTPDevice.objects.create(
        user=user, name="test", confirmed=True
    )
    sign_in_verified(client, user, device)


# --- the guardian's lookup, through the real URLs ----------------------------------------


def start_lookup(client: Client, elder) -> LookupRequest:
    response = client.post(reverse("lookups:start", args=[elder.public_id]))
    assert response.status_code == 302, response
    return LookupRequest.objects.latest("created_at")


def pass_otp(client: Client, lookup: LookupRequest, device: TOTPDevice) -> None:
    response = client.post(reverse("lookups:otp", args=[lookup.pk]), {"token": totp_now(device)})
    assert response.status_code == 302
    lookup.refresh_from_db()
    assert lookup.state == LookupRequest.State.AWAITING_FACE, lookup.state


def lookup_at_face_step(client: Client, elder, device: TOTPDevice) -> LookupRequest:
    """Start a lookup of ``elder`` and pass its code step: the lookup awaits the face."""
    lookup = start_lookup(client, elder)
    pass_otp(client, lookup, device)
    return lookup


def lookup_granted(client: Client, elder, device: TOTPDevice, photo: str = "person_01/04.jpg") -> LookupRequest:
    """A lookup of ``elder`` through code and face (``photo`` must match the enrolled guardian)."""
    lookup = lookup_at_face_step(client, elder, device)
    submit_face(client, lookup, face_bytes(photo))
    run_pending_check(lookup)
    assert lookup.state == LookupRequest.State.GRANTED, lookup.state
    return lookup


def stored_id_number(person) -> str:
    """The person's ID number, decrypted (what staff typed at registration)."""
    return crypto.decrypt(person.id_number_ciphertext).decode()


def submit_face(client: Client, lookup: LookupRequest, image: bytes, name: str = "me.jpg"):
    return client.post(
        reverse("lookups:face", args=[lookup.pk]),
        {"photo": SimpleUploadedFile(name, image, content_type="image/jpeg")},
    )


def run_pending_check(lookup: LookupRequest) -> FaceCheck:
    """What the Celery worker does: run the queued check of this lookup."""
    check = lookup.face_checks.get(state=FaceCheck.State.QUEUED)
    services.face_check_run(check_id=check.pk)
    check.refresh_from_db()
    lookup.refresh_from_db()
    return check


# --- files and requests -------------------------------------------------------------------


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (16, 16), color: str = "white") -> bytes:
    """A plain RGB image of one colour, encoded as ``fmt`` (PNG, JPEG, WEBP)."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


def request_from(remote: str, forwarded_for: str | None = None) -> HttpRequest:
    """A GET request from peer ``remote``, with an ``X-Forwarded-For`` header if given."""
    meta = {"REMOTE_ADDR": remote}
    if forwarded_for is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return RequestFactory().get("/", **meta)
