from django import template

from lookups import messages

register = template.Library()


@register.filter
def face_check_message(check) -> str:
    return messages.face_check_message(check)


@register.simple_tag(takes_context=True)
def large_text_on(context) -> bool:
    """Elder mode: the account's setting when signed in, else the pre-sign-in cookie."""
    request = context.get("request")
    if request is None:
        return False
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return bool(getattr(user, "large_text", False))
    return request.COOKIES.get("kinguard_large_text") == "1"
