"""SMS backends for elder notices, chosen by ``KINGUARD_SMS_BACKEND`` (a dotted path).

Mainland gateways send only pre-approved templates, so a message is an ``SmsMessage``: the
recipient in E.164, our template id (the notice kind, e.g. ``results_viewed``), the template
parameters, and the rendered text for backends that send free text.

A backend raises on a failed delivery:

- ``SmsError`` (retryable): the notice task retries with backoff;
- ``SmsPermanentError``: this number/message can never be delivered; the SMS channel gives up;
- ``SmsAlertError`` (a permanent error): the deployment is misconfigured or out of credit (bad
  key, unknown signature or template, no balance); gives up *and* alerts the operators.

Shipped: ``ConsoleSmsBackend`` (logs), ``FileSmsBackend`` (appends to ``KINGUARD_SMS_FILE_PATH``),
``LocmemSmsBackend`` (tests) and ``AliyunSmsBackend`` (Alibaba Cloud SMS, ``dysmsapi`` 2017-05-25).

Invariant: outside ``DEBUG`` the console and file backends write no personal data: the number
is masked (``+86138****8000``) and only the template id and parameter *names* are recorded
(parameters hold names of elders, guardians and clinics).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from django.utils.module_loading import import_string

from guardians import phones

logger = logging.getLogger("kinguard.sms")
alert_logger = logging.getLogger("kinguard.alerts")


@dataclass(frozen=True)
class SmsMessage:
    """One SMS: ``to`` in E.164, ``template`` our template id, ``params`` its values, ``text`` rendered."""

    to: str
    template: str
    params: dict[str, str] = field(default_factory=dict)
    text: str = ""


class SmsError(Exception):
    """The message was not delivered; safe to retry."""


class SmsPermanentError(SmsError):
    """The message can never be delivered as it is (bad number, blocked content): do not retry."""


class SmsAlertError(SmsPermanentError):
    """Delivery is impossible until an operator acts (credentials, signature, template, balance)."""


class BaseSmsBackend:
    def send(self, message: SmsMessage) -> None:
        raise NotImplementedError


def loggable(message: SmsMessage) -> dict[str, Any]:
    """What a development backend may write: everything under DEBUG, else no personal data."""
    if settings.DEBUG:
        return asdict(message)
    return {"to": phones.mask(message.to), "template": message.template, "params": sorted(message.params)}


class ConsoleSmsBackend(BaseSmsBackend):
    def send(self, message: SmsMessage) -> None:
        data = loggable(message)
        if settings.DEBUG:
            logger.info("SMS to %s (%s): %s", data["to"], data["template"], data["text"])
        else:
            logger.info("SMS to %s (%s, params %s)", data["to"], data["template"], ",".join(data["params"]))


class FileSmsBackend(BaseSmsBackend):
    """One JSON line per message, appended to ``KINGUARD_SMS_FILE_PATH``."""

    _lock = threading.Lock()

    def send(self, message: SmsMessage) -> None:
        path = Path(settings.KINGUARD_SMS_FILE_PATH)
        line = json.dumps({"at": timezone.now().isoformat(), **loggable(message)}, ensure_ascii=False)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock, path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        except OSError as exc:
            raise SmsError(f"could not write {path}: {exc.strerror}") from exc


class LocmemSmsBackend(BaseSmsBackend):
    outbox: list[dict[str, Any]] = []

    def send(self, message: SmsMessage) -> None:
        LocmemSmsBackend.outbox.append(asdict(message))


# --- Alibaba Cloud SMS ------------------------------------------------------------------------

# Error codes of SendSms (https://help.aliyun.com/document_detail/101346.html), by what to do.
ALIYUN_RETRY = frozenset(
    {
        "isp.SYSTEM_ERROR",
        "isv.BUSINESS_LIMIT_CONTROL",  # rate limit per number/minute/hour
        "isv.DAY_LIMIT_CONTROL",
        "Throttling.User",
        "Throttling",
        "ServiceUnavailable",
        "InternalError",
    }
)
ALIYUN_GIVE_UP = frozenset(
    {
        "isv.MOBILE_NUMBER_ILLEGAL",
        "isv.MOBILE_COUNT_OVER_LIMIT",
        "isv.BLACK_KEY_CONTROL_LIMIT",
        "isv.DENY_IP_RANGE",
        "isv.INVALID_PARAMETERS",
        "isv.PARAM_NOT_SUPPORT_URL",
    }
)
ALIYUN_ALERT = frozenset(
    {
        "isv.AMOUNT_NOT_ENOUGH",
        "isv.OUT_OF_SERVICE",
        "isv.ACCOUNT_NOT_EXISTS",
        "isv.ACCOUNT_ABNORMAL",
        "isv.PRODUCT_UN_SUBSCRIPT",
        "isv.PRODUCT_UNSUBSCRIBE",
        "isv.SMS_SIGNATURE_ILLEGAL",
        "isv.SMS_SIGN_ILLEGAL",
        "isv.SIGN_NAME_ILLEGAL",
        "isv.SMS_TEMPLATE_ILLEGAL",
        "isv.TEMPLATE_MISSING_PARAMETERS",
        "isv.TEMPLATE_PARAMS_ILLEGAL",
        "isv.PARAM_LENGTH_LIMIT",
        "isv.INVALID_JSON_PARAM",
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId.Inactive",
        "SignatureDoesNotMatch",
        "Forbidden.RAM",
        "isp.RAM_PERMISSION_DENY",
        "InvalidCredentials",
    }
)


def aliyun_error(code: str, message: str = "") -> SmsError:
    """The exception for a gateway error code: unknown codes are retried (and logged)."""
    text = f"aliyun {code}: {message}"[:200]
    if code in ALIYUN_ALERT:
        return SmsAlertError(text)
    if code in ALIYUN_GIVE_UP:
        return SmsPermanentError(text)
    return SmsError(text)


def aliyun_phone(e164: str) -> str:
    """The gateway's form: the national number for the mainland, country code + number elsewhere."""
    if e164.startswith("+86"):
        return e164[3:]
    return e164.lstrip("+")


class AliyunSmsBackend(BaseSmsBackend):
    """Alibaba Cloud SMS through its official SDK (``alibabacloud-dysmsapi20170525``).

    Settings (from the environment, see README): ``KINGUARD_ALIYUN_SMS_ACCESS_KEY_ID``,
    ``..._ACCESS_KEY_SECRET``, ``..._SIGN_NAME``, ``..._TEMPLATES`` (our template id -> the
    approved ``TemplateCode``), ``..._ENDPOINT`` (default ``dysmsapi.aliyuncs.com``),
    ``..._PROTOCOL`` (``https``; ``http`` only for the local fake in tests).
    """

    def __init__(self) -> None:
        from alibabacloud_dysmsapi20170525.client import Client
        from alibabacloud_tea_openapi import utils_models

        key_id = settings.KINGUARD_ALIYUN_SMS_ACCESS_KEY_ID
        secret = settings.KINGUARD_ALIYUN_SMS_ACCESS_KEY_SECRET
        if not (key_id and secret and settings.KINGUARD_ALIYUN_SMS_SIGN_NAME):
            raise ImproperlyConfigured(
                "AliyunSmsBackend needs KINGUARD_ALIYUN_SMS_ACCESS_KEY_ID, KINGUARD_ALIYUN_SMS_ACCESS_KEY_SECRET "
                "and KINGUARD_ALIYUN_SMS_SIGN_NAME."
            )
        config = utils_models.Config(
            access_key_id=key_id,
            access_key_secret=secret,
            endpoint=settings.KINGUARD_ALIYUN_SMS_ENDPOINT,
            protocol=settings.KINGUARD_ALIYUN_SMS_PROTOCOL,
            region_id="cn-hangzhou",
            connect_timeout=settings.KINGUARD_ALIYUN_SMS_TIMEOUT_MS,
            read_timeout=settings.KINGUARD_ALIYUN_SMS_TIMEOUT_MS,
        )
        self.client = Client(config)

    def send(self, message: SmsMessage) -> None:
        from alibabacloud_dysmsapi20170525 import models

        template_code = settings.KINGUARD_ALIYUN_SMS_TEMPLATES.get(message.template)
        if not template_code:
            raise SmsAlertError(f"no TemplateCode configured for {message.template!r} (KINGUARD_ALIYUN_SMS_TEMPLATES)")
        request = models.SendSmsRequest(
            phone_numbers=aliyun_phone(message.to),
            sign_name=settings.KINGUARD_ALIYUN_SMS_SIGN_NAME,
            template_code=template_code,
            template_param=json.dumps(message.params, ensure_ascii=False),
        )
        try:
            response = self.client.send_sms(request)
        except Exception as exc:  # the SDK raises for HTTP errors (with .code) and network failures
            code = getattr(exc, "code", None)
            if code:
                raise aliyun_error(str(code), str(getattr(exc, "message", "") or "")) from exc
            raise SmsError(f"aliyun unreachable: {type(exc).__name__}") from exc
        body = response.body
        code = (body.code if body else None) or "NoResponse"
        if code != "OK":
            raise aliyun_error(code, body.message if body else "")
        logger.info("SMS sent (%s), biz id %s", message.template, body.biz_id)


def get_sms_backend() -> BaseSmsBackend:
    return import_string(settings.KINGUARD_SMS_BACKEND)()
