"""Phone numbers: parsed with ``phonenumbers`` and stored in E.164 (``+8613800000000``).

Invariant: every phone a service writes is either ``""`` or a valid E.164 string. Numbers typed
without a country code are read as mainland China (``PHONE_DEFAULT_REGION``, default ``CN``);
for the default region only mobile numbers are accepted (notices go by SMS).
"""

from __future__ import annotations

import phonenumbers
from django.conf import settings
from django.utils.translation import gettext_lazy as _

INVALID_MESSAGE = _(
    "Enter a valid mobile phone number, for example 138 0013 8000, or with a country code, +852 5123 4567."
)


class InvalidPhoneNumber(ValueError):
    """The text is not a valid (mobile) phone number."""


def default_region() -> str:
    return getattr(settings, "PHONE_DEFAULT_REGION", "CN") or "CN"


def normalize(raw: str, *, region: str | None = None) -> str:
    """Return the E.164 form of ``raw`` ("" for blank). Raises InvalidPhoneNumber."""
    text = (raw or "").strip()
    if not text:
        return ""
    region = region or default_region()
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(str(exc)) from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber("not a valid number")
    if phonenumbers.region_code_for_number(number) == region:
        kind = phonenumbers.number_type(number)
        if kind not in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
            raise InvalidPhoneNumber("not a mobile number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask(e164: str) -> str:
    """``+8613800138000`` -> ``+86138****8000``: enough to tell numbers apart in a log, no more."""
    text = (e164 or "").strip()
    if len(text) <= 7:
        return "*" * len(text)
    return text[:6] + "*" * (len(text) - 10 if len(text) > 10 else 1) + text[-4:]
