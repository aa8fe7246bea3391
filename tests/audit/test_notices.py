"""Elder notices go out once per event, also when the task runs twice or is retried."""

import datetime as dt

import pytest
from django.core import mail
from django.utils import timezone

from guardians import services as guardian_services
from lookups import services, task_queue, tasks
from lookups.audit import Actor
from lookups.models import AuditEvent, LookupRequest, Notice
from lookups.oversight import notices
from lookups.oversight.sms import LocmemSmsBackend, SmsError
from tests import factories

pytestmark = pytest.mark.django_db
Kind = Notice.Kind


@pytest.fixture
def reachable_elder(elder):
    elder.notify_email, elder.phone = "zhang@example.org", "+86 138 0000 0001"
    elder.save(update_fields=["notify_email", "phone"])
    return elder


def granted_lookup(guardian, elder) -> LookupRequest:
    """A lookup moved to granted the way the services do (face check outcome aside)."""
    lookup = services.lookup_start(actor=Actor.for_user(guardian.user), elder_public_id=elder.public_id)
    LookupRequest.objects.filter(pk=lookup.pk).update(
        state=LookupRequest.State.GRANTED,
        granted_at=timezone.now(),
        grant_expires_at=timezone.now() + dt.timedelta(minutes=10),
    )
    return lookup


def send_all() -> list[str]:
    return [notices.notice_send(notice_id=pk) for pk in Notice.objects.order_by("pk").values_list("pk", flat=True)]


def test_results_view_notice_is_queued_once_per_lookup_and_sent_once(
    guardian, reachable_elder, authorization, results, django_capture_on_commit_callbacks
):
    Notice.objects.all().delete()  # the authorization's own notices are tested below
    lookup = granted_lookup(guardian, reachable_elder)
    with django_capture_on_commit_callbacks() as callbacks:
        services.results_view(actor=Actor.for_user(guardian.user), lookup_id=lookup.pk)
        services.results_view(actor=Actor.for_user(guardian.user), lookup_id=lookup.pk)
    assert len(callbacks) == 1  # one send_notice published, after commit
    notice = Notice.objects.get()
    assert (notice.kind, notice.object_key, notice.person) == (Kind.RESULTS_VIEWED, str(lookup.pk), reachable_elder)
    assert notice.status == Notice.Status.PENDING

    assert tasks.send_notice.run(notice.pk) == Notice.Status.SENT
    assert tasks.send_notice.run(notice.pk) == Notice.Status.SENT  # redelivered: nothing sent again
    assert len(mail.outbox) == 1 and len(LocmemSmsBackend.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["zhang@example.org"] and guardian.full_name in message.body
    assert results[0].result not in message.body  # who and when only, never the results
    sms = LocmemSmsBackend.outbox[0]
    assert sms["to"] == "+8613800000001"  # E.164 for the gateway
    assert sms["template"] == "results_viewed" and sms["params"]["viewer"] == guardian.full_name
    assert set(sms["params"]) == {"viewer", "relationship", "time", "clinic", "phone"}
    assert results[0].result not in str(sms["params"])
    notice.refresh_from_db()
    assert notice.attempts == 1 and notice.sent_at and notice.email_sent_at and notice.sms_sent_at
    sent = AuditEvent.objects.get(action="notice.sent")
    assert sent.subject_id == reachable_elder.pk and sent.details["channels"] == ["email", "sms"]
    assert sent.actor_label == "system:notifier"


def test_self_lookup_sends_no_notice(staff, clinic):
    elder = factories.make_person(staff, clinic, "Zhao Min", elder=True, login=True)
    lookup = services.lookup_start(actor=Actor.for_user(elder.user), elder_public_id=elder.public_id)
    LookupRequest.objects.filter(pk=lookup.pk).update(
        state=LookupRequest.State.GRANTED, grant_expires_at=timezone.now() + dt.timedelta(minutes=5)
    )
    services.results_view(actor=Actor.for_user(elder.user), lookup_id=lookup.pk)
    assert not Notice.objects.exists()


def test_failed_channel_is_retried_without_resending_the_other(
    guardian, reachable_elder, authorization, monkeypatch, settings
):
    Notice.objects.all().delete()
    lookup = granted_lookup(guardian, reachable_elder)
    services.results_view(actor=Actor.for_user(guardian.user), lookup_id=lookup.pk)
    notice = Notice.objects.get()
    calls = {"n": 0}

    def flaky_send(self, message):
        calls["n"] += 1
        if calls["n"] == 1:
            raise SmsError("gateway timeout")
        LocmemSmsBackend.outbox.append({"to": message.to, "text": message.text})

    monkeypatch.setattr(LocmemSmsBackend, "send", flaky_send)
    with pytest.raises(notices.NoticeDeliveryError):
        tasks.send_notice.run(notice.pk)  # Celery's autoretry_for catches this and retries
    notice.refresh_from_db()
    assert notice.status == Notice.Status.PENDING and notice.email_sent_at and notice.sms_sent_at is None
    assert tasks.send_notice.run(notice.pk) == Notice.Status.SENT  # the retry
    assert tasks.send_notice.run(notice.pk) == Notice.Status.SENT  # a duplicate delivery
    assert len(mail.outbox) == 1 and len(LocmemSmsBackend.outbox) == 1
    assert list(
        AuditEvent.objects.filter(action__in=["notice.failed", "notice.sent"])
        .order_by("sequence")
        .values_list("action", "outcome")
    ) == [("notice.failed", "will_retry"), ("notice.sent", "sent")]


def test_gives_up_after_the_maximum_attempts(guardian, reachable_elder, authorization, monkeypatch, settings):
    settings.KINGUARD_NOTICE_MAX_ATTEMPTS = 2
    Notice.objects.all().delete()
    lookup = granted_lookup(guardian, reachable_elder)
    services.results_view(actor=Actor.for_user(guardian.user), lookup_id=lookup.pk)
    notice = Notice.objects.get()

    def down(self, message):
        raise SmsError("down")

    monkeypatch.setattr(LocmemSmsBackend, "send", down)
    with pytest.raises(notices.NoticeDeliveryError):
        tasks.send_notice.run(notice.pk)
    assert tasks.send_notice.run(notice.pk) == Notice.Status.FAILED
    assert tasks.send_notice.run(notice.pk) == Notice.Status.FAILED
    assert len(mail.outbox) == 1
    assert AuditEvent.objects.filter(action="notice.failed", outcome="failed").count() == 1


def test_no_contact_is_recorded_not_retried(guardian, elder, authorization):
    Notice.objects.all().delete()
    lookup = granted_lookup(guardian, elder)
    services.results_view(actor=Actor.for_user(guardian.user), lookup_id=lookup.pk)
    assert send_all() == [Notice.Status.NO_CONTACT]
    assert AuditEvent.objects.filter(action="notice.failed", outcome="no_contact").count() == 1
    assert not mail.outbox


def test_authorization_created_approved_revoked_each_notify_once(staff, manager, guardian, reachable_elder):
    authorization = guardian_services.authorization_create(
        actor=Actor.for_user(staff),
        guardian=guardian,
        elder=reachable_elder,
        relationship="child",
        consent_basis="elder_present",
    )
    by_manager = {"actor": Actor.for_user(manager), "authorization_id": authorization.pk}
    guardian_services.authorization_approve(**by_manager)
    guardian_services.authorization_suspend(**by_manager, reason="suspension is not announced")
    guardian_services.authorization_revoke(**by_manager, reason="at the elder's request")
    assert list(Notice.objects.order_by("pk").values_list("kind", flat=True)) == [
        Kind.AUTHORIZATION_CREATED,
        Kind.AUTHORIZATION_APPROVED,
        Kind.AUTHORIZATION_REVOKED,
    ]
    assert send_all() == [Notice.Status.SENT] * 3
    assert send_all() == [Notice.Status.SENT] * 3
    assert len(mail.outbox) == 3 and len(LocmemSmsBackend.outbox) == 3
    assert "can no longer look up" in mail.outbox[2].body
    queued = AuditEvent.objects.filter(action="notice.queued").order_by("sequence")
    created = AuditEvent.objects.get(action="authorization.created")
    assert queued[0].sequence == created.sequence + 1  # in the same transaction as the event


def test_expiring_authorizations_are_announced_once_per_end_date(staff, manager, guardian, reachable_elder):
    now = timezone.now()
    authorization = factories.make_active_authorization(
        staff, manager, guardian, reachable_elder, valid_until=now + dt.timedelta(days=30)
    )
    Notice.objects.all().delete()
    assert notices.notices_queue_expiring(now=now) == 0
    later = now + dt.timedelta(days=24)
    assert notices.notices_queue_expiring(now=later) == 1
    assert notices.notices_queue_expiring(now=later + dt.timedelta(hours=6)) == 0
    guardian_services.authorization_renew(
        actor=Actor.for_user(manager), authorization_id=authorization.pk, valid_until=now + dt.timedelta(days=60)
    )
    assert notices.notices_queue_expiring(now=later) == 0
    assert notices.notices_queue_expiring(now=now + dt.timedelta(days=55)) == 1
    assert Notice.objects.filter(kind=Kind.AUTHORIZATION_EXPIRING).count() == 2
    send_all()
    assert "ends on" in mail.outbox[0].body


def test_broker_outage_does_not_fail_the_results_page_and_beat_requeues(
    guardian, reachable_elder, authorization, monkeypatch, django_capture_on_commit_callbacks
):
    from kombu.exceptions import OperationalError

    Notice.objects.all().delete()
    lookup = granted_lookup(guardian, reachable_elder)

    def broker_down(*args, **kwargs):
        raise OperationalError("broker down")

    monkeypatch.setattr(task_queue, "publish", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        view = services.results_view(actor=Actor.for_user(guardian.user), lookup_id=lookup.pk)
    assert view.lookup.pk == lookup.pk
    notice = Notice.objects.get()
    assert notice.status == Notice.Status.PENDING
    published = []
    monkeypatch.setattr(task_queue, "publish", lambda name, notice_id: published.append((name, notice_id)))
    assert notices.notices_requeue_stale(now=timezone.now()) == 0  # within the grace period
    assert notices.notices_requeue_stale(now=timezone.now() + dt.timedelta(minutes=20)) == 1
    assert published == [(task_queue.SEND_NOTICE, notice.pk)]


def test_notices_are_written_in_the_elders_language(guardian, reachable_elder, authorization, settings):
    settings.KINGUARD_NOTICE_LANGUAGE = "zh-hans"  # the deployment default
    Notice.objects.all().delete()  # the authorization's own notices are not the point here
    lookup = granted_lookup(guardian, reachable_elder)
    services.results_view(actor=Actor.for_user(guardian.user), lookup_id=lookup.pk)
    assert send_all() == [Notice.Status.SENT]
    chinese = mail.outbox[-1]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in chinese.subject), chinese.subject
    assert "Your test results were viewed" not in chinese.subject
    assert guardian.full_name in chinese.body
    assert "子女" in chinese.body  # the relationship, translated too
    assert "viewed your test results" not in chinese.body
    # An elder who chose English in their own account gets English.
    reachable_elder.user = factories.UserFactory(preferred_language="en")
    reachable_elder.save(update_fields=["user"])
    assert notices.notice_language(reachable_elder) == "en"
