"""Race tests on PostgreSQL (django-otp's ConcurrencyTestCase idea): threads released
together by a barrier call the same service at once; the row locks must let exactly one
win. Each thread uses (and closes) its own database connection."""

import threading

import pytest
from django.db import connection

from lookups import services
from lookups.audit import Actor
from lookups.models import AuditEvent, FaceCheck, LookupRequest
from lookups.services import face_checks
from tests.helpers import face_bytes, pass_otp, require_postgresql, start_lookup, totp_now

pytestmark = pytest.mark.django_db(transaction=True)
State = LookupRequest.State


@pytest.fixture(autouse=True)
def _postgres_only():
    require_postgresql("race tests need PostgreSQL row locks: set DATABASE_URL=postgres://...")


def at_once(*calls):
    """Run the calls in threads released together; return [(ok, value-or-exception)]."""
    barrier = threading.Barrier(len(calls))
    outcomes: list = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait(timeout=10)
            outcomes[index] = (True, call())
        except Exception as exc:
            outcomes[index] = (False, exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck (deadlock?)"
    return outcomes


def split(outcomes):
    wins = [value for ok, value in outcomes if ok]
    losses = [value for ok, value in outcomes if not ok]
    return wins, losses


@pytest.fixture
def lookup(guardian_client, authorization, guardian_device):
    return start_lookup(guardian_client, authorization.elder)


def test_same_otp_code_twice_at_once_for_one_lookup(guardian, guardian_device, lookup):
    actor = Actor.for_user(guardian.user)
    token = totp_now(guardian_device)
    wins, losses = split(
        at_once(
            *[
                lambda: services.lookup_verify_otp(
                    actor=actor, lookup_id=lookup.pk, session_binding=lookup.session_binding, token=token
                )
            ]
            * 2
        )
    )
    assert len(wins) == 1 and len(losses) == 1
    assert isinstance(losses[0], services.LookupRefused) and losses[0].code == "wrong_step"
    lookup.refresh_from_db()
    assert lookup.state == State.AWAITING_FACE
    assert AuditEvent.objects.filter(action="otp.verified").count() == 1


def test_same_otp_code_at_once_for_two_lookups_is_accepted_once(
    guardian, guardian_client, authorization, guardian_device, lookup
):
    second = start_lookup(guardian_client, authorization.elder)
    actor = Actor.for_user(guardian.user)
    token = totp_now(guardian_device)
    wins, losses = split(
        at_once(
            lambda: services.lookup_verify_otp(
                actor=actor, lookup_id=lookup.pk, session_binding=lookup.session_binding, token=token
            ),
            lambda: services.lookup_verify_otp(
                actor=actor, lookup_id=second.pk, session_binding=second.session_binding, token=token
            ),
        )
    )
    # The device row is locked too: the code is used once, the other tab is told so.
    assert len(wins) == 1 and len(losses) == 1
    assert losses[0].code == "replayed"
    states = sorted(LookupRequest.objects.filter(pk__in=[lookup.pk, second.pk]).values_list("state", flat=True))
    assert states == sorted([State.AWAITING_FACE, State.AWAITING_OTP])


@pytest.fixture
def at_face_step(guardian_client, guardian_device, enrolled_guardian, lookup):
    pass_otp(guardian_client, lookup, guardian_device)
    return lookup


def test_same_face_step_twice_at_once_queues_one_check(guardian, at_face_step, settings):
    actor = Actor.for_user(guardian.user)
    image = face_bytes("person_01/04.jpg")
    wins, losses = split(
        at_once(
            *[
                lambda: services.lookup_submit_face(
                    actor=actor, lookup_id=at_face_step.pk, session_binding=at_face_step.session_binding, images=[image]
                )
            ]
            * 2
        )
    )
    assert len(wins) == 1 and len(losses) == 1
    assert isinstance(losses[0], services.LookupRefused) and losses[0].code == "wrong_step"
    (check,) = FaceCheck.objects.filter(lookup=at_face_step)
    assert check.pk == wins[0].pk
    at_face_step.refresh_from_db()
    assert (at_face_step.state, at_face_step.face_attempts) == (State.CHECKING_FACE, 1)
    assert AuditEvent.objects.filter(action="face.submitted").count() == 1
    assert sorted(p.name for p in settings.PROBE_DIR.iterdir()) == [f"{check.pk}.npz"]


def test_two_deliveries_of_one_check_at_once_give_one_verdict(guardian, at_face_step, settings, monkeypatch):
    check = services.lookup_submit_face(
        actor=Actor.for_user(guardian.user),
        lookup_id=at_face_step.pk,
        session_binding=at_face_step.session_binding,
        images=[face_bytes("person_01/04.jpg")],
    )
    # Both deliveries compute (one at a time: dlib is not shared across threads), then
    # wait for each other, so both reach the locked recording phase together.
    compute = face_checks._compute
    one_at_a_time = threading.Lock()
    both_computed = threading.Barrier(2)

    def compute_then_meet(*args):
        with one_at_a_time:
            result = compute(*args)
        both_computed.wait(timeout=30)
        return result

    monkeypatch.setattr(face_checks, "_compute", compute_then_meet)
    wins, losses = split(at_once(*[lambda: services.face_check_run(check_id=check.pk)] * 2))
    assert losses == [] and wins == [FaceCheck.Outcome.MATCH] * 2
    check.refresh_from_db()
    assert (check.state, check.outcome, check.deliveries) == (FaceCheck.State.DONE, FaceCheck.Outcome.MATCH, 2)
    assert AuditEvent.objects.filter(action="face.verdict", target_id=str(check.pk)).count() == 1
    assert AuditEvent.objects.filter(action="lookup.granted").count() == 1
    at_face_step.refresh_from_db()
    assert at_face_step.state == State.GRANTED
    assert list(settings.PROBE_DIR.iterdir()) == []
