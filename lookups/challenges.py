"""Prompted-liveness challenges of the face step (issue 11): issue one, consume it once.

The server, not the page, chooses what the person must do: :func:`challenge_issue` stores a
random challenge (two distinct actions of ``lookups.faces.ACTIONS``, random order, from
``lookups.faces.choose_challenge``) with the lookup, a nonce and an expiry of
``KINGUARD_FACE_CHALLENGE_SECONDS``; the page shows the prompt and its upload names the nonce;
:func:`challenge_consume` turns the nonce back into the actions exactly once.

Invariants (each has an attack test in ``tests/lookups/test_challenges.py``):

* a nonce answers only for the lookup it was issued for: another lookup's nonce is
  ``challenge_unknown``, exactly like a nonce that never existed (no oracle);
* a nonce is used once: a replay is ``challenge_used``; after its expiry it is
  ``challenge_expired``;
* reloading the page shows the same live challenge again instead of drawing a new one, and
  a lookup gets at most ``KINGUARD_FACE_CHALLENGES_PER_LOOKUP`` challenges
  (``challenge_limit``), so an attacker holding a video of one prompt cannot reload until
  that prompt comes up;
* ``KINGUARD_FACE_CHALLENGE_FIXED`` (tests only; production settings refuse it) fixes the
  actions; it must name known actions.

Refusals are audited (``face.challenge_refused``, the code as outcome; nothing of the face)
in this module's own transaction and raised after it commits, so call
:func:`challenge_consume` *before* (outside) a transaction that would roll back on the
refusal. Lock order: lookup, then challenge (callers that hold the lookup lock keep it).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .audit import Actor, audit_record
from .models import FaceChallenge, LookupRequest

NONCE_BYTES = 24  # token_urlsafe(24): 32 characters, 192 bits
# What token_urlsafe can produce; anything else (NUL bytes, quotes, huge strings) never reaches SQL.
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")

CHALLENGE_MESSAGES = {
    "challenge_unknown": _("This camera prompt is not valid for this lookup. Please take the pictures again."),
    "challenge_used": _("This camera prompt was already used. Please take the pictures again with the new prompt."),
    "challenge_expired": _("The camera prompt expired. Please take the pictures again with the new prompt."),
    "challenge_limit": _("Too many camera prompts for this lookup. Please start a new lookup."),
}


#: What the page asks for each action (large, with an icon/animation per action).
ACTION_PROMPTS = {
    "blink": _("Blink slowly"),
    "open_mouth": _("Open your mouth"),
    "turn_left": _("Turn your head left"),
    "turn_right": _("Turn your head right"),
}


def action_prompts(challenge: FaceChallenge) -> list[dict[str, str]]:
    """``[{"action": "blink", "text": "Blink slowly"}, ...]`` in order, in the active language."""
    return [{"action": a, "text": str(ACTION_PROMPTS.get(a, a))} for a in challenge.action_list]


class ChallengeRefused(Exception):
    """The challenge cannot be issued or consumed. ``code`` is stable, ``str()`` is for people.

    Same shape as ``services.LookupRefused`` (``code``, message, ``retry_at``) so the face
    service can re-raise it as one.
    """

    def __init__(self, code: str):
        super().__init__(str(CHALLENGE_MESSAGES[code]))
        self.code = code
        self.retry_at: dt.datetime | None = None


def _known_actions() -> tuple[str, ...]:
    from . import faces

    return tuple(faces.ACTIONS)


def fixed_actions() -> tuple[str, ...] | None:
    """The test-only fixed challenge, validated; ``None`` when unset (the production case)."""
    raw = (settings.KINGUARD_FACE_CHALLENGE_FIXED or "").strip()
    if not raw:
        return None
    actions = tuple(a.strip() for a in raw.split(",") if a.strip())
    unknown = [a for a in actions if a not in _known_actions()]
    if not actions or unknown or len(set(actions)) != len(actions):
        raise ValueError(f"KINGUARD_FACE_CHALLENGE_FIXED={raw!r}: known actions are {', '.join(_known_actions())}")
    return actions


def _choose() -> tuple[str, ...]:
    fixed = fixed_actions()
    if fixed is not None:
        return fixed
    from . import faces

    return tuple(faces.choose_challenge())


def _audit(lookup: LookupRequest, *, actor: Actor, action: str, outcome: str, challenge=None, details=None) -> None:
    audit_record(
        actor=actor,
        action=action,
        outcome=outcome,
        subject=lookup.elder,
        target=challenge if challenge is not None else lookup,
        clinic=lookup.elder.clinic,
        details={"lookup": str(lookup.pk), **(details or {})},
    )


def challenge_issue(lookup: LookupRequest, *, actor: Actor, now: dt.datetime | None = None) -> FaceChallenge:
    """The lookup's live challenge: the unused, unexpired one if any, else a new random one.

    Raises ``ChallengeRefused("challenge_limit")`` (audited) once the lookup has had
    ``KINGUARD_FACE_CHALLENGES_PER_LOOKUP`` challenges.
    """
    now = now or timezone.now()
    # A reload shows the live challenge: read without a lock (page loads never lock).
    unlocked = (
        FaceChallenge.objects.filter(lookup_id=lookup.pk, used_at__isnull=True, expires_at__gt=now)
        .order_by("-created_at")
        .first()
    )
    if unlocked is not None:
        return unlocked
    refusal: ChallengeRefused | None = None
    actions: tuple[str, ...] = ()
    with transaction.atomic():
        locked = LookupRequest.objects.select_for_update().select_related("elder__clinic").get(pk=lookup.pk)
        live = (
            FaceChallenge.objects.select_for_update()
            .filter(lookup=locked, used_at__isnull=True, expires_at__gt=now)
            .order_by("-created_at")
            .first()
        )
        if live is not None:
            return live
        if FaceChallenge.objects.filter(lookup=locked).count() >= settings.KINGUARD_FACE_CHALLENGES_PER_LOOKUP:
            refusal = ChallengeRefused("challenge_limit")
            _audit(locked, actor=actor, action="face.challenge_refused", outcome=refusal.code)
        else:
            actions = _choose()
            challenge = FaceChallenge.objects.create(
                lookup=locked,
                nonce=secrets.token_urlsafe(NONCE_BYTES),
                actions=",".join(actions),
                created_at=now,
                expires_at=now + dt.timedelta(seconds=settings.KINGUARD_FACE_CHALLENGE_SECONDS),
            )
            _audit(
                locked,
                actor=actor,
                action="face.challenge_issued",
                outcome="issued",
                challenge=challenge,
                details={"actions": challenge.actions, "fixed": fixed_actions() is not None},
            )
    if refusal is not None:
        raise refusal
    return challenge


def challenge_live(lookup: LookupRequest, *, now: dt.datetime | None = None) -> FaceChallenge | None:
    """The lookup's unused, unexpired challenge, if any (a read: no lock, nothing written)."""
    now = now or timezone.now()
    return (
        FaceChallenge.objects.filter(lookup=lookup, used_at__isnull=True, expires_at__gt=now)
        .order_by("-created_at")
        .first()
    )


def challenge_retake(lookup: LookupRequest, *, actor: Actor) -> FaceChallenge | None:
    """The challenge for a retake on the same page: the live one, else a new one once the
    page's challenge was used or expired. A lookup that never showed the page gets none (an
    upload refused before any prompt writes nothing)."""
    live = challenge_live(lookup)
    if live is not None or not FaceChallenge.objects.filter(lookup=lookup).exists():
        return live
    return challenge_issue(lookup, actor=actor)


def challenge_consume(
    lookup: LookupRequest, nonce: str, *, actor: Actor, now: dt.datetime | None = None
) -> tuple[str, ...]:
    """Mark the lookup's challenge named by ``nonce`` used and return its actions, in order.

    Refuses (audited, then raised after commit) ``challenge_unknown`` (no such nonce *for this
    lookup*, including another lookup's), ``challenge_used`` (a replay) and
    ``challenge_expired``.
    """
    now = now or timezone.now()
    nonce = nonce.strip() if isinstance(nonce, str) else ""
    refusal: ChallengeRefused | None = None
    with transaction.atomic():
        locked = LookupRequest.objects.select_for_update().select_related("elder__clinic").get(pk=lookup.pk)
        challenge = None
        if isinstance(nonce, str) and _NONCE_RE.fullmatch(nonce):
            challenge = FaceChallenge.objects.select_for_update().filter(lookup=locked, nonce=nonce).first()
        if challenge is None:
            refusal = ChallengeRefused("challenge_unknown")
        elif challenge.used_at is not None:
            refusal = ChallengeRefused("challenge_used")
        elif challenge.expires_at <= now:
            refusal = ChallengeRefused("challenge_expired")
        if refusal is not None:
            _audit(locked, actor=actor, action="face.challenge_refused", outcome=refusal.code, challenge=challenge)
        elif challenge is not None:  # always, when there is no refusal
            challenge.used_at = now
            challenge.save(update_fields=["used_at"])
            actions = tuple(challenge.action_list)
    if refusal is not None:
        raise refusal
    return actions


def challenge_message(code: str) -> str:
    return str(CHALLENGE_MESSAGES.get(code, CHALLENGE_MESSAGES["challenge_unknown"]))
