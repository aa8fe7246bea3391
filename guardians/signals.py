"""Signals guardians sends for the apps built on it (guardians imports none of them).

``person_registered(sender=Person, actor=Actor, person=Person)`` is sent inside the
registration's transaction, after its audit event: a receiver's writes commit or roll back
with the registration, and a receiver's exception fails it (``send``, not ``send_robust``).
``lookups`` attaches the laboratory results that arrived before the person was registered.
"""

from django.dispatch import Signal

person_registered = Signal()
