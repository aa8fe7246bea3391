"""Every flow leaves its events: the exact trail of one full lookup, sign-ins, staff views."""

import json

import pytest
from django.core import mail
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from guardians import crypto
from lookups.audit import verify_chain
from lookups.models import AuditEvent, LookupRequest, Notice
from lookups.oversight.notices import notice_send
from lookups.oversight.sms import LocmemSmsBackend
from tests.helpers import face_bytes, otp_login, pass_otp, run_pending_check, start_lookup, submit_face, totp_now

pytestmark = pytest.mark.django_db
BROWSER = "Mozilla/5.0 (Kinguard test)"


def _actions_after(sequence: int) -> list[str]:
    return list(AuditEvent.objects.filter(sequence__gt=sequence).order_by("sequence").values_list("action", flat=True))


def test_one_full_lookup_leaves_exactly_these_events(
    client, guardian, elder, authorization, guardian_device, enrolled_guardian, results
):
    elder.notify_email, elder.phone = "zhang@example.org", "+86 138 0000 0000"
    elder.save(update_fields=["notify_email", "phone"])
    start = AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first()
    client.defaults["HTTP_USER_AGENT"] = BROWSER

    response = client.post(reverse("login"), {"username": guardian.user.username, "password": "correct horse battery"})
    assert response.status_code == 302
    lookup = start_lookup(client, elder)
    pass_otp(client, lookup, guardian_device)
    assert submit_face(client, lookup, face_bytes("person_01/04.jpg")).status_code == 302
    run_pending_check(lookup)
    assert lookup.state == LookupRequest.State.GRANTED
    assert client.get(reverse("lookups:results", args=[lookup.pk])).status_code == 200
    assert client.get(reverse("lookups:results", args=[lookup.pk])).status_code == 200  # second view
    notice = Notice.objects.get(kind=Notice.Kind.RESULTS_VIEWED, object_key=str(lookup.pk))
    notice_send(notice_id=notice.pk)  # what the Celery worker does

    assert _actions_after(start) == [
        "login.succeeded",
        "lookup.started",
        "otp.verified",
        "face.submitted",
        "face.verdict",
        "lookup.granted",
        "results.viewed",
        "notice.queued",
        "results.viewed",
        "notice.sent",
    ]
    events = list(AuditEvent.objects.filter(sequence__gt=start).order_by("sequence"))
    by_user = [e for e in events if e.action not in ("face.verdict", "lookup.granted", "notice.sent")]
    for event in by_user:
        assert event.actor_id == guardian.user_id and event.actor_label == guardian.user.username
        assert event.ip == "127.0.0.1" and event.user_agent == BROWSER
    assert {e.actor_label for e in events if e.action in ("face.verdict", "lookup.granted")} == {"system:face-worker"}
    assert next(e for e in events if e.action == "notice.sent").actor_label == "system:notifier"
    for event in events:
        assert event.clinic_id == elder.clinic_id
        if event.action != "login.succeeded":
            assert event.subject_id == elder.pk
    # no full ID numbers and no face data anywhere in the trail
    dumped = json.dumps([e.details for e in events])
    for person in (elder, guardian):
        assert crypto.decrypt(person.id_number_ciphertext).decode() not in dumped
    assert "embedding" not in dumped and "encoding" not in dumped
    assert verify_chain()[1] is None
    assert len(mail.outbox) == 1 and len(LocmemSmsBackend.outbox) == 1


def test_site_login_failure_is_audited_without_the_password(client, guardian):
    client.post(reverse("login"), {"username": guardian.user.username, "password": "wrong password 123"})
    client.post(reverse("login"), {"username": "nobody-here", "password": "whatever 123"})
    failures = list(AuditEvent.objects.filter(action="login.failed").order_by("sequence"))
    assert [e.details["username"] for e in failures] == [guardian.user.username, "nobody-here"]
    assert failures[0].target_id == str(guardian.user_id) and failures[0].clinic_id == guardian.clinic_id
    assert failures[0].details["known_account"] is True and failures[1].details["known_account"] is False
    assert failures[0].outcome == "invalid_login" and failures[0].ip == "127.0.0.1"
    assert "wrong password" not in json.dumps([e.details for e in failures])


def test_admin_login_success_and_wrong_otp_are_audited(client, manager):
    device = TOTPDevice.objects.create(user=manager, name="phone", confirmed=True)
    url = reverse("admin:login")
    data = {"username": manager.username, "password": "correct horse battery", "otp_device": device.persistent_id}
    response = client.post(url, {**data, "otp_token": totp_now(device)})
    assert response.status_code == 302
    success = AuditEvent.objects.get(action="login.succeeded")
    assert success.actor_id == manager.pk and success.details == {"via": "admin", "otp_verified": True}
    assert success.clinic_id is not None and success.ip == "127.0.0.1"
    client.logout()
    response = client.post(url, {**data, "otp_token": "000000"})
    assert response.status_code == 200
    failed = AuditEvent.objects.get(action="login.failed")
    assert failed.details["via"] == "admin" and failed.details["username"] == manager.username
    assert failed.actor_id is None and failed.target_id == str(manager.pk)
    response = client.post(url, {**data, "password": "not the password"})
    assert AuditEvent.objects.filter(action="login.failed").count() == 2


def test_staff_view_of_person_and_result_is_audited(client, superuser, elder, results):
    otp_login(client, superuser)
    assert client.get(reverse("admin:guardians_person_change", args=[elder.pk])).status_code == 200
    assert client.get(reverse("admin:lookups_testresult_change", args=[results[0].pk])).status_code == 200
    viewed = AuditEvent.objects.get(action="person.viewed")
    assert viewed.subject_id == elder.pk and viewed.actor_id == superuser.pk and viewed.ip == "127.0.0.1"
    result_view = AuditEvent.objects.get(action="result.viewed_by_staff")
    assert result_view.subject_id == elder.pk and result_view.target_id == str(results[0].pk)
    assert result_view.details == {"kind": results[0].kind, "with_photo": False}


def test_staff_cannot_view_other_clinics_person_and_nothing_is_logged_as_viewed(client, elder, other_clinic):
    from tests import factories

    outsider = factories.make_staff(other_clinic)
    from django.contrib.auth.models import Permission

    outsider.user_permissions.add(Permission.objects.get(codename="view_person"))
    otp_login(client, outsider)
    response = client.get(reverse("admin:guardians_person_change", args=[elder.pk]))
    assert response.status_code == 404  # another clinic's object: answered as if it did not exist
    assert not AuditEvent.objects.filter(action="person.viewed").exists()


def test_every_admin_change_is_audited(client, superuser, clinic):
    otp_login(client, superuser)
    url = reverse("admin:guardians_clinic_change", args=[clinic.pk])
    response = client.post(url, {"name": clinic.name, "address": "2 River Road", "phone": "010-1"})
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="admin.changed")
    assert event.actor_id == superuser.pk and event.clinic_id == clinic.pk
    assert event.details["model"] == "guardians.Clinic"
    assert event.details["message"] == [{"changed": {"fields": ["Address", "Phone"]}}]
    response = client.post(reverse("admin:guardians_clinic_add"), {"name": "Lakeside", "address": "", "phone": ""})
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="admin.added", details__model="guardians.Clinic").count() == 1
