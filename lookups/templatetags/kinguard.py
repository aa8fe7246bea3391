from django import template

from lookups import selectors

register = template.Library()


@register.filter
def face_check_message(check) -> str:
    return selectors.face_check_message(check)
