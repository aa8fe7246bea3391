"""Prompted-liveness challenges (issue 11): issued by the server, each nonce used once."""

import datetime as dt
from collections import Counter

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from lookups import challenges, faces
from lookups.audit import Actor
from lookups.models import AuditEvent, FaceChallenge, LookupRequest

pytestmark = pytest.mark.django_db


def _lookup(authorization) -> LookupRequest:
    guardian = authorization.guardian if hasattr(authorization, "guardian") else None
    return LookupRequest.objects.create(
        requester=guardian.user,
        requester_person=guardian,
        elder=authorization.elder,
        authorization=authorization,
        state=LookupRequest.State.AWAITING_FACE,
    )


@pytest.fixture
def lookup(authorization):
    return _lookup(authorization)


@pytest.fixture
def actor(guardian):
    return Actor.for_user(guardian.user)


def test_issue_stores_two_distinct_known_actions_a_nonce_and_an_expiry(lookup, actor, settings):
    before = timezone.now()
    challenge = challenges.challenge_issue(lookup, actor=actor)
    actions = challenge.action_list
    assert len(actions) == 2 and len(set(actions)) == 2 and set(actions) <= set(faces.ACTIONS)
    assert len(challenge.nonce) >= 32
    expected = before + dt.timedelta(seconds=settings.KINGUARD_FACE_CHALLENGE_SECONDS)
    assert abs((challenge.expires_at - expected).total_seconds()) < 5
    assert challenge.used_at is None
    event = AuditEvent.objects.get(action="face.challenge_issued")
    assert event.subject == lookup.elder and event.details["actions"] == challenge.actions
    assert event.details["fixed"] is False


def test_reload_shows_the_same_live_challenge_and_a_new_one_after_use(lookup, actor):
    first = challenges.challenge_issue(lookup, actor=actor)
    assert challenges.challenge_issue(lookup, actor=actor).pk == first.pk
    challenges.challenge_consume(lookup, first.nonce, actor=actor)
    second = challenges.challenge_issue(lookup, actor=actor)
    assert second.pk != first.pk and second.nonce != first.nonce


def test_consume_returns_the_actions_in_order_once(lookup, actor, settings):
    settings.KINGUARD_FACE_CHALLENGE_FIXED = "open_mouth,turn_left"
    challenge = challenges.challenge_issue(lookup, actor=actor)
    assert challenges.challenge_consume(lookup, challenge.nonce, actor=actor) == ("open_mouth", "turn_left")
    challenge.refresh_from_db()
    assert challenge.used_at is not None


def test_attack_replayed_nonce_is_refused(lookup, actor):
    challenge = challenges.challenge_issue(lookup, actor=actor)
    challenges.challenge_consume(lookup, challenge.nonce, actor=actor)
    with pytest.raises(challenges.ChallengeRefused) as refused:
        challenges.challenge_consume(lookup, challenge.nonce, actor=actor)
    assert refused.value.code == "challenge_used"
    assert AuditEvent.objects.get(action="face.challenge_refused").outcome == "challenge_used"


def test_attack_another_lookups_nonce_is_unknown_and_stays_usable_there(authorization, actor):
    mine, theirs = _lookup(authorization), _lookup(authorization)
    their_challenge = challenges.challenge_issue(theirs, actor=actor)
    challenges.challenge_issue(mine, actor=actor)
    with pytest.raises(challenges.ChallengeRefused) as refused:
        challenges.challenge_consume(mine, their_challenge.nonce, actor=actor)
    assert refused.value.code == "challenge_unknown"
    their_challenge.refresh_from_db()
    assert their_challenge.used_at is None  # the refused attempt did not burn it
    assert challenges.challenge_consume(theirs, their_challenge.nonce, actor=actor) == tuple(
        their_challenge.action_list
    )


def test_attack_expired_nonce_is_refused(lookup, actor, settings):
    challenge = challenges.challenge_issue(lookup, actor=actor)
    later = challenge.expires_at + dt.timedelta(seconds=1)
    with pytest.raises(challenges.ChallengeRefused) as refused:
        challenges.challenge_consume(lookup, challenge.nonce, actor=actor, now=later)
    assert refused.value.code == "challenge_expired"
    challenge.refresh_from_db()
    assert challenge.used_at is None
    # After the expiry, the page gets a new challenge (not the expired one again).
    assert challenges.challenge_issue(lookup, actor=actor, now=later).pk != challenge.pk


@pytest.mark.parametrize("nonce", ["", "x", "A" * 65, "' OR 1=1 --", "\x00", "é" * 10])
def test_attack_forged_or_junk_nonce_is_unknown(lookup, actor, nonce):
    challenges.challenge_issue(lookup, actor=actor)
    with pytest.raises(challenges.ChallengeRefused) as refused:
        challenges.challenge_consume(lookup, nonce, actor=actor)
    assert refused.value.code == "challenge_unknown"
    assert str(refused.value)  # a retake sentence for people


def test_attack_reloading_for_a_wanted_prompt_hits_the_per_lookup_limit(lookup, actor, settings):
    settings.KINGUARD_FACE_CHALLENGES_PER_LOOKUP = 3
    for _ in range(3):
        challenge = challenges.challenge_issue(lookup, actor=actor)
        challenges.challenge_consume(lookup, challenge.nonce, actor=actor)
    with pytest.raises(challenges.ChallengeRefused) as refused:
        challenges.challenge_issue(lookup, actor=actor)
    assert refused.value.code == "challenge_limit"
    assert FaceChallenge.objects.filter(lookup=lookup).count() == 3


def test_fixed_challenge_for_tests_and_bad_values_are_refused(lookup, actor, settings):
    settings.KINGUARD_FACE_CHALLENGE_FIXED = "blink"
    assert challenges.challenge_issue(lookup, actor=actor).actions == "blink"
    for bad in ("smile", "blink,blink", "blink,nod"):
        settings.KINGUARD_FACE_CHALLENGE_FIXED = bad
        with pytest.raises(ValueError):
            challenges.fixed_actions()


def test_random_challenges_cover_every_ordered_pair():
    seen = Counter(tuple(faces.choose_challenge()) for _ in range(600))
    assert len(seen) == 12  # 4 actions, 2 distinct, ordered: a recorded video fits 1 in 12


def test_production_settings_refuse_a_fixed_challenge(monkeypatch):
    import base64
    import importlib
    import sys

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    env = {
        "SECRET_KEY": "x" * 50,
        "KINGUARD_ENCRYPTION_KEYS": "dGVzdC1vbmx5LWtpbmd1YXJkLWtleS0wMDAwMDAwMDA=",
        "KINGUARD_ID_HASH_KEY": "k",
        "KINGUARD_AUDIT_SIGNING_KEY": base64.b64encode(key).decode(),
        "DATABASE_URL": "postgres://u@h/db",
        "CELERY_BROKER_URL": "redis://h:6379/0",
        "DJANGO_ALLOWED_HOSTS": "example.org",
        "KINGUARD_FACE_CHALLENGE_FIXED": "blink",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("config.settings.production", "config.settings.base"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(ImproperlyConfigured, match="KINGUARD_FACE_CHALLENGE_FIXED"):
        importlib.import_module("config.settings.production")
    monkeypatch.delenv("KINGUARD_FACE_CHALLENGE_FIXED")
    for name in ("config.settings.production", "config.settings.base"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    importlib.import_module("config.settings.production")  # without it, production starts


def test_retake_reuses_the_live_challenge_and_replaces_a_used_one(lookup, actor):
    assert challenges.challenge_retake(lookup, actor=actor) is None  # page never shown: nothing written
    assert not FaceChallenge.objects.filter(lookup=lookup).exists()
    shown = challenges.challenge_issue(lookup, actor=actor)
    assert challenges.challenge_retake(lookup, actor=actor).pk == shown.pk
    challenges.challenge_consume(lookup, shown.nonce, actor=actor)
    again = challenges.challenge_retake(lookup, actor=actor)
    assert again is not None and again.pk != shown.pk and again.used_at is None


def test_face_page_shows_the_prompt_and_the_nonce_in_chinese(guardian_client, authorization, guardian_device, settings):
    from django.urls import reverse

    from tests.helpers import pass_otp, start_lookup

    settings.KINGUARD_FACE_CHALLENGE_FIXED = "blink,turn_left"
    lookup = start_lookup(guardian_client, authorization.elder)
    pass_otp(guardian_client, lookup, guardian_device)
    guardian_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    page = guardian_client.get(reverse("lookups:face", args=[lookup.pk])).content.decode()
    challenge = FaceChallenge.objects.get(lookup=lookup)
    assert f'name="challenge" value="{challenge.nonce}"' in page
    assert page.index("请眨眨眼") < page.index("请向左转头")
    assert "icon-blink" in page and "icon-turn_left" in page
    assert "摄像头将录制约" in page
    # A reload shows the same prompt (no new draw).
    guardian_client.get(reverse("lookups:face", args=[lookup.pk]))
    assert FaceChallenge.objects.filter(lookup=lookup).count() == 1
