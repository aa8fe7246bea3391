"""Drive the guardian flow through the real URLs and services."""

from django.urls import reverse

from lookups import services
from lookups.models import FaceCheck, LookupRequest
from tests.conftest import totp_now


def start_lookup(client, elder) -> LookupRequest:
    response = client.post(reverse("lookups:start", args=[elder.public_id]))
    assert response.status_code == 302, response
    return LookupRequest.objects.latest("created_at")


def pass_otp(client, lookup, device) -> None:
    response = client.post(reverse("lookups:otp", args=[lookup.pk]), {"token": totp_now(device)})
    assert response.status_code == 302
    lookup.refresh_from_db()
    assert lookup.state == LookupRequest.State.AWAITING_FACE, lookup.state


def submit_face(client, lookup, image: bytes, name: str = "me.jpg"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(
        reverse("lookups:face", args=[lookup.pk]),
        {"photo": SimpleUploadedFile(name, image, content_type="image/jpeg")},
    )


def run_pending_check(lookup) -> FaceCheck:
    """What the Celery worker does: run the queued check of this lookup."""
    check = lookup.face_checks.get(state=FaceCheck.State.QUEUED)
    services.face_check_run(check_id=check.pk)
    check.refresh_from_db()
    lookup.refresh_from_db()
    return check
