"""Templates ask the one rule (``guardians.permissions.staff_can``) the same way views do.

``{% staff_actions person.clinic_id as allowed %}`` then ``{% if "enroll" in allowed %}``:
one query for every action at that clinic; ``{% staff_can "enroll" clinic as can %}`` for one.
"""

from __future__ import annotations

from django import template

from guardians import permissions

register = template.Library()


@register.simple_tag(takes_context=True)
def staff_actions(context, clinic) -> frozenset[str]:
    request = context.get("request")
    return permissions.staff_actions_at(getattr(request, "user", None), clinic)


@register.simple_tag(takes_context=True)
def staff_can(context, action: str, clinic) -> bool:
    request = context.get("request")
    return permissions.staff_can(getattr(request, "user", None), action, clinic)
