"""Types shared by views: a request whose user is known to be signed in.

``login_required``, ``staff_view`` and the admin site's ``admin_view`` let a view run only
for an authenticated ``User``; Django's ``HttpRequest.user`` is typed ``User | AnonymousUser``
all the same. Views behind those decorators take an ``AuthenticatedHttpRequest`` instead, so
the type checker knows what the decorator guarantees (``staff_view`` is the one place that
narrows, after its checks). Nothing changes at run time: it is the same request object.
"""

from __future__ import annotations

from django.http import HttpRequest

from guardians.models import User


class AuthenticatedHttpRequest(HttpRequest):
    """An ``HttpRequest`` behind ``login_required``/``staff_view``/``admin_view``."""

    user: User
