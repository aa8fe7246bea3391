"""Anomaly rules fire on synthetic patterns, stay quiet on normal use, and raise one flag
per pattern and window however often the detector runs; the acknowledge/resolve workflow
records who handled a flag and when."""

import datetime as dt
import zoneinfo

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from lookups import services, tasks
from lookups.audit import Actor
from lookups.models import AnomalyFlag, AuditEvent, FaceCheck
from lookups.oversight.anomalies import AnomalyError, anomalies_detect, anomaly_acknowledge, anomaly_resolve
from tests import factories
from tests.helpers import otp_login

pytestmark = pytest.mark.django_db
Rule = AnomalyFlag.Rule
LOCAL = zoneinfo.ZoneInfo("Asia/Shanghai")
DAYTIME = dt.datetime(2026, 3, 10, 10, 0, tzinfo=LOCAL)
NIGHT = dt.datetime(2026, 3, 10, 2, 30, tzinfo=LOCAL)


def actor_for(person, ip="198.51.100.1") -> Actor:
    return Actor(user=person.user, label=person.user.username, ip=ip, user_agent="test")


def authorized_pair(staff, manager, clinic, name, guardian=None, registered_at=None):
    """An elder and an active authorization for ``guardian`` (registered ``registered_at``)."""
    elder = factories.make_person(staff, clinic, f"Elder {name}", elder=True)
    guardian = guardian or factories.make_person(staff, clinic, f"Guardian {name}", guardian=True, login=True)
    with time_machine.travel(registered_at or DAYTIME - dt.timedelta(days=2), tick=False):
        factories.make_active_authorization(staff, manager, guardian, elder)
    return guardian, elder


def rules(flags=None) -> list[str]:
    return sorted(flag.rule for flag in (flags or AnomalyFlag.objects.all()))


def test_normal_use_raises_nothing(staff, manager, clinic):
    guardian, elder = authorized_pair(staff, manager, clinic, "A")
    with time_machine.travel(DAYTIME, tick=False):
        for _ in range(3):
            services.lookup_start(actor=actor_for(guardian), elder_public_id=elder.public_id)
        assert anomalies_detect() == {}
    with time_machine.travel(DAYTIME + dt.timedelta(hours=1), tick=False):
        assert anomalies_detect() == {}
    assert not AnomalyFlag.objects.exists()


def test_daipai_many_distinct_elders_fires_once_per_window(staff, manager, clinic, settings):
    guardian, first = authorized_pair(staff, manager, clinic, "B")
    elders = [first] + [authorized_pair(staff, manager, clinic, f"B{i}", guardian=guardian)[1] for i in range(4)]
    with time_machine.travel(DAYTIME, tick=False):
        for elder in elders[:3]:
            services.lookup_start(actor=actor_for(guardian), elder_public_id=elder.public_id)
        assert anomalies_detect() == {}  # 3 < KINGUARD_ANOMALY_MANY_ELDERS (4)
    with time_machine.travel(DAYTIME + dt.timedelta(minutes=10), tick=False):
        services.lookup_start(actor=actor_for(guardian), elder_public_id=elders[3].public_id)
        assert anomalies_detect() == {Rule.MANY_ELDERS: 1}
        assert anomalies_detect() == {}  # the same window again: no second flag
    with time_machine.travel(DAYTIME + dt.timedelta(minutes=20), tick=False):
        services.lookup_start(actor=actor_for(guardian), elder_public_id=elders[4].public_id)
        tasks.detect_anomalies()
    flag = AnomalyFlag.objects.get(rule=Rule.MANY_ELDERS)
    assert flag.key == f"user:{guardian.user_id}" and flag.account_id == guardian.user_id
    assert flag.count == 5 and flag.details["distinct_elders"] == 5  # evidence updated in place
    assert flag.clinic_id == clinic.pk and flag.status == AnomalyFlag.Status.OPEN
    assert AuditEvent.objects.filter(action="anomaly.flagged", outcome=Rule.MANY_ELDERS).count() == 1
    with time_machine.travel(DAYTIME + dt.timedelta(days=3), tick=False):
        for elder in elders[:4]:
            services.lookup_start(actor=actor_for(guardian), elder_public_id=elder.public_id)
        assert anomalies_detect() == {Rule.MANY_ELDERS: 1}  # a new window, a new flag
    assert AnomalyFlag.objects.filter(rule=Rule.MANY_ELDERS).count() == 2


def test_otp_failure_burst(staff, manager, clinic, guardian_device, guardian, elder, authorization):
    # early in a failure window, so the burst cannot straddle two windows
    soon = (timezone.now() + dt.timedelta(hours=1)).replace(minute=10, second=0)
    with time_machine.travel(soon, tick=True):
        lookup = services.lookup_start(actor=actor_for(guardian), elder_public_id=elder.public_id)
        for _ in range(4):
            with pytest.raises(services.LookupRefused):
                services.lookup_verify_otp(actor=actor_for(guardian), lookup_id=lookup.pk, token="000000")
        assert Rule.OTP_FAILURES not in anomalies_detect()
        with pytest.raises(services.LookupRefused):
            services.lookup_verify_otp(actor=actor_for(guardian), lookup_id=lookup.pk, token="000000")
        assert Rule.OTP_FAILURES in anomalies_detect()
    flag = AnomalyFlag.objects.get(rule=Rule.OTP_FAILURES)
    assert flag.account_id == guardian.user_id and flag.count == 5


def test_face_failure_burst(staff, manager, clinic):
    guardian, elder = authorized_pair(staff, manager, clinic, "C")
    with time_machine.travel(DAYTIME, tick=False):
        lookup = services.lookup_start(actor=actor_for(guardian), elder_public_id=elder.public_id)
        for outcome in ["no_match", "rejected", "no_match", "no_match", "match", "no_match"]:
            FaceCheck.objects.create(lookup=lookup, state=FaceCheck.State.DONE, outcome=outcome)
        assert anomalies_detect() == {Rule.FACE_FAILURES: 1}
    flag = AnomalyFlag.objects.get(rule=Rule.FACE_FAILURES)
    assert flag.count == 5 and flag.account_id == guardian.user_id


def test_one_ip_many_accounts(staff, manager, clinic):
    pairs = [authorized_pair(staff, manager, clinic, f"D{i}") for i in range(4)]
    with time_machine.travel(DAYTIME, tick=False):
        for guardian, elder in pairs[:3]:
            services.lookup_start(actor=actor_for(guardian, ip="203.0.113.7"), elder_public_id=elder.public_id)
        services.lookup_start(actor=actor_for(pairs[3][0], ip="203.0.113.8"), elder_public_id=pairs[3][1].public_id)
        assert anomalies_detect() == {}
        services.lookup_start(actor=actor_for(pairs[3][0], ip="203.0.113.7"), elder_public_id=pairs[3][1].public_id)
        assert anomalies_detect() == {Rule.SHARED_IP: 1}
    flag = AnomalyFlag.objects.get(rule=Rule.SHARED_IP)
    assert flag.key == "ip:203.0.113.7" and flag.count == 4 and len(flag.details["accounts"]) == 4


def test_lookups_at_unusual_hours(staff, manager, clinic):
    guardian, elder = authorized_pair(staff, manager, clinic, "E")
    with time_machine.travel(NIGHT, tick=False):
        services.lookup_start(actor=actor_for(guardian), elder_public_id=elder.public_id)
        assert anomalies_detect() == {}  # one late lookup is not yet a pattern
        services.lookup_start(actor=actor_for(guardian), elder_public_id=elder.public_id)
        assert anomalies_detect() == {Rule.UNUSUAL_HOURS: 1}
    flag = AnomalyFlag.objects.get(rule=Rule.UNUSUAL_HOURS)
    assert flag.details["local_times"] == ["2026-03-10 02:30", "2026-03-10 02:30"]


def test_authorization_used_minutes_after_it_was_created(staff, manager, clinic):
    guardian, elder = authorized_pair(staff, manager, clinic, "F", registered_at=DAYTIME - dt.timedelta(minutes=5))
    with time_machine.travel(DAYTIME, tick=False):
        services.lookup_start(actor=actor_for(guardian), elder_public_id=elder.public_id)
        assert anomalies_detect() == {Rule.QUICK_USE: 1}
        services.lookup_start(actor=actor_for(guardian), elder_public_id=elder.public_id)
        assert anomalies_detect() == {}
    flag = AnomalyFlag.objects.get(rule=Rule.QUICK_USE)
    assert flag.details["minutes_to_first_use"] == 5.0 and flag.count == 2


@pytest.fixture
def flag(staff, manager, clinic):
    guardian, elder = authorized_pair(staff, manager, clinic, "G", registered_at=DAYTIME - dt.timedelta(minutes=1))
    with time_machine.travel(DAYTIME, tick=False):
        services.lookup_start(actor=actor_for(guardian), elder_public_id=elder.public_id)
        anomalies_detect()
    return AnomalyFlag.objects.get()


def test_acknowledge_then_resolve_records_who_and_when(flag, auditor):
    flag = anomaly_acknowledge(actor=Actor.for_user(auditor), flag_id=flag.pk, note="Calling the clinic")
    assert flag.status == AnomalyFlag.Status.ACKNOWLEDGED and flag.acknowledged_by == auditor
    with pytest.raises(AnomalyError):
        anomaly_acknowledge(actor=Actor.for_user(auditor), flag_id=flag.pk)
    with pytest.raises(AnomalyError):
        anomaly_resolve(actor=Actor.for_user(auditor), flag_id=flag.pk, note="  ")
    flag = anomaly_resolve(actor=Actor.for_user(auditor), flag_id=flag.pk, note="Family registered at the desk.")
    assert flag.status == AnomalyFlag.Status.RESOLVED and flag.resolved_by == auditor and flag.resolved_at
    assert flag.resolution_note == "Family registered at the desk."
    with pytest.raises(AnomalyError):
        anomaly_resolve(actor=Actor.for_user(auditor), flag_id=flag.pk, note="again")
    events = AuditEvent.objects.filter(action__startswith="anomaly.", actor=auditor).order_by("sequence")
    assert [e.action for e in events] == ["anomaly.acknowledged", "anomaly.resolved"]
    assert all(e.target_id == str(flag.pk) for e in events)


def test_auditor_of_another_clinic_cannot_handle_or_see_the_flag(flag, other_auditor, client):
    with pytest.raises(AnomalyError):
        anomaly_acknowledge(actor=Actor.for_user(other_auditor), flag_id=flag.pk)
    otp_login(client, other_auditor)
    listing = client.get(reverse("admin:lookups_anomalyflag_changelist"))
    assert listing.status_code == 200 and flag.key not in listing.content.decode()
    response = client.post(reverse("admin:lookups_anomalyflag_change", args=[flag.pk]), {"_resolve": "1", "note": "x"})
    assert response.status_code == 404
    flag.refresh_from_db()
    assert flag.status == AnomalyFlag.Status.OPEN


def test_resolve_through_the_admin(flag, auditor_client, auditor):
    url = reverse("admin:lookups_anomalyflag_change", args=[flag.pk])
    page = auditor_client.get(url)
    assert page.status_code == 200 and b'name="_resolve"' in page.content
    response = auditor_client.post(url, {"_resolve": "1", "note": ""})
    assert response.status_code == 302
    flag.refresh_from_db()
    assert flag.status == AnomalyFlag.Status.OPEN  # a note is required
    auditor_client.post(url, {"_resolve": "1", "note": "Checked with the family."})
    flag.refresh_from_db()
    assert flag.status == AnomalyFlag.Status.RESOLVED and flag.resolved_by == auditor
