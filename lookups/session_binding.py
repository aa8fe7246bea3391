"""Session-bound grants (issue 10.1): a lookup belongs to the browser session that earned it.

A lookup is started, stepped through (code, face) and viewed in one authenticated session.
At start the service stores ``binding_for_key(session_key)`` — an HMAC keyed from
``SECRET_KEY``, so the database never holds a usable session key — on the lookup, and every
later step, the status poll and the results view compare it with the caller's. Another
session, even the same user's signed in with the password only, gets the same "not found"
as someone else's lookup. Django's ``login`` rotates the session key (``cycle_key``), so a
key planted before sign-in (fixation) never matches, and ``logout`` flushes the session, so
signing out ends the grant.

The binding is passed to the services explicitly (``session_binding=``), never through a
thread-local. ``None`` is for callers with no browser session (scripts, bench, tests of the
service layer): such lookups are unbound, and a bound lookup never matches ``None``.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.crypto import constant_time_compare, salted_hmac

_SALT = "kinguard.lookups.session_binding"


def binding_for_key(session_key: str) -> str:
    """The stored form of a session key: HMAC-SHA256 under a key derived from SECRET_KEY."""
    return salted_hmac(_SALT, session_key, algorithm="sha256").hexdigest()


def session_binding(request: HttpRequest) -> str:
    """The caller's binding; a session without a key yet is saved first (it gets one)."""
    session = request.session
    if not session.session_key:
        session.save()
    key = session.session_key
    if key is None:  # save() always assigns one
        raise RuntimeError("the session has no key after save()")
    return binding_for_key(key)


def binding_matches(stored: str, given: str | None) -> bool:
    """Whether a lookup's stored binding belongs to the caller (constant time)."""
    return constant_time_compare(stored or "", given or "")
