"""Signal receivers, connected in ``LookupsConfig.ready``.

They are the entry points through which other apps' events reach lookups' services: the
senders (Django's auth, ``guardians``) import nothing of lookups, and the modules that
services import (``session_binding`` and the like) do not import services back.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from guardians.models import Person, User

from .audit import Actor
from .session_binding import binding_for_key


def end_lookups_at_sign_out(sender: Any, request: HttpRequest | None, user: User | None, **kwargs: Any) -> None:
    """``user_logged_out`` receiver (sent before the session is flushed): end its lookups."""
    if request is None or user is None or not getattr(request, "session", None) or not request.session.session_key:
        return
    from .services import lookups_end_for_session

    actor = Actor.from_request(request)
    if actor.user is None:
        actor = Actor(user=user, label=user.get_username(), ip=actor.ip, user_agent=actor.user_agent)
    lookups_end_for_session(actor=actor, session_binding=binding_for_key(request.session.session_key))


def attach_waiting_results(sender: Any, *, actor: Actor, person: Person, **kwargs: Any) -> None:
    """``guardians.signals.person_registered`` receiver: lab results that arrived before the
    registration (issue 15) are attached to the new person, in the registration's transaction."""
    from .fhir.services import pending_attach

    pending_attach(actor=actor, person=person)
