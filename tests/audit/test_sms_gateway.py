"""SMS by template: the Alibaba Cloud backend against a local fake of the gateway's HTTP API
(the real SDK signs and sends; the fake checks the ACS3 signature and answers like dysmsapi),
the error-code mapping, and development backends that log no personal data outside DEBUG."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from django.core import mail

from lookups.models import AuditEvent, Notice
from lookups.oversight import notices, sms
from lookups.oversight.sms import (
    AliyunSmsBackend,
    ConsoleSmsBackend,
    FileSmsBackend,
    SmsAlertError,
    SmsError,
    SmsMessage,
    SmsPermanentError,
)

KEY_ID, SECRET = "LTAI-test-key", "test-secret"
MESSAGE = SmsMessage(
    to="+8613800138000",
    template="results_viewed",
    params={"viewer": "王小明", "relationship": "子女", "time": "2026-12-03 17:00", "clinic": "东城诊所", "phone": "-"},
    text="Kinguard: 王小明 (子女) viewed your test results on 2026-12-03 17:00.",
)


def _enc(text: str) -> str:
    return quote(text, safe="-_.~")


def signature_ok(method: str, target: str, headers: dict[str, str], body: bytes, secret: str) -> bool:
    """Verify an ACS3-HMAC-SHA256 request signature as the gateway does."""
    url = urlsplit(target)
    query = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in sorted(parse_qsl(url.query, keep_blank_values=True)))
    auth = headers.get("Authorization", "")
    if not auth.startswith("ACS3-HMAC-SHA256 "):
        return False
    parts = dict(part.split("=", 1) for part in auth.split(" ", 1)[1].split(","))
    lower = {k.lower(): v for k, v in headers.items()}
    signed = parts["SignedHeaders"].split(";")
    canonical_headers = "".join(f"{name}:{lower.get(name, '').strip()}\n" for name in signed)
    canonical = "\n".join(
        [method, url.path or "/", query, canonical_headers, parts["SignedHeaders"], hashlib.sha256(body).hexdigest()]
    )
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    expected = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return parts.get("Credential") == KEY_ID and hmac.compare_digest(expected, parts.get("Signature", ""))


class FakeDysms:
    """A local stand-in for dysmsapi.aliyuncs.com: records SendSms calls, answers ``reply``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.reply: tuple[int, dict[str, str]] = (200, {"Code": "OK", "Message": "OK", "BizId": "900^0"})
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                params = dict(parse_qsl(urlsplit(self.path).query)) | dict(parse_qsl(body.decode()))
                params["_action"] = self.headers.get("x-acs-action", "")
                if not signature_ok(self.command, self.path, dict(self.headers), body, SECRET):
                    status, payload = (
                        400,
                        {"Code": "SignatureDoesNotMatch", "Message": "Specified signature is not matched"},
                    )
                else:
                    status, payload = fake.reply
                fake.requests.append(params)
                out = json.dumps({**payload, "RequestId": "fake-request"}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json;charset=utf-8")
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.server.server_port}"


@pytest.fixture
def gateway(settings) -> Iterator[FakeDysms]:
    fake = FakeDysms()
    fake.thread.start()
    settings.KINGUARD_SMS_BACKEND = "lookups.oversight.sms.AliyunSmsBackend"
    settings.KINGUARD_ALIYUN_SMS_ACCESS_KEY_ID = KEY_ID
    settings.KINGUARD_ALIYUN_SMS_ACCESS_KEY_SECRET = SECRET
    settings.KINGUARD_ALIYUN_SMS_SIGN_NAME = "金卫诊所"
    settings.KINGUARD_ALIYUN_SMS_TEMPLATES = {kind: f"SMS_10{i}" for i, kind in enumerate(Notice.Kind.values)}
    settings.KINGUARD_ALIYUN_SMS_ENDPOINT = fake.endpoint
    settings.KINGUARD_ALIYUN_SMS_PROTOCOL = "http"
    settings.KINGUARD_ALIYUN_SMS_TIMEOUT_MS = 2000
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def test_sends_the_template_code_sign_name_and_params_signed(gateway):
    AliyunSmsBackend().send(MESSAGE)
    [request] = gateway.requests
    assert request["_action"] == "SendSms"
    assert request["PhoneNumbers"] == "13800138000"
    assert request["SignName"] == "金卫诊所"
    assert request["TemplateCode"] == "SMS_10" + str(Notice.Kind.values.index("results_viewed"))
    assert json.loads(request["TemplateParam"]) == MESSAGE.params


def test_a_foreign_number_goes_with_its_country_code(gateway):
    AliyunSmsBackend().send(SmsMessage(to="+85251234567", template="results_viewed", params={}, text=""))
    assert gateway.requests[0]["PhoneNumbers"] == "85251234567"


def test_a_wrong_secret_is_refused_by_the_gateway_and_alerts(gateway, settings):
    settings.KINGUARD_ALIYUN_SMS_ACCESS_KEY_SECRET = "not-the-secret"
    with pytest.raises(SmsAlertError, match="SignatureDoesNotMatch"):
        AliyunSmsBackend().send(MESSAGE)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (200, "isv.BUSINESS_LIMIT_CONTROL", "retry"),
        (200, "isp.SYSTEM_ERROR", "retry"),
        (200, "isv.SOMETHING_NEW", "retry"),
        (500, "InternalError", "retry"),
        (200, "isv.MOBILE_NUMBER_ILLEGAL", "give_up"),
        (200, "isv.BLACK_KEY_CONTROL_LIMIT", "give_up"),
        (200, "isv.AMOUNT_NOT_ENOUGH", "alert"),
        (200, "isv.SMS_TEMPLATE_ILLEGAL", "alert"),
        (200, "isv.SMS_SIGNATURE_ILLEGAL", "alert"),
        (404, "InvalidAccessKeyId.NotFound", "alert"),
    ],
)
def test_error_codes_map_to_retry_give_up_alert(gateway, status, code, expected):
    gateway.reply = (status, {"Code": code, "Message": "from the fake"})
    with pytest.raises(SmsError) as caught:
        AliyunSmsBackend().send(MESSAGE)
    kind = (
        "alert"
        if isinstance(caught.value, SmsAlertError)
        else "give_up"
        if isinstance(caught.value, SmsPermanentError)
        else "retry"
    )
    assert kind == expected
    assert code in str(caught.value)


def test_an_unreachable_gateway_is_retried(gateway, settings):
    gateway.server.shutdown()
    gateway.server.server_close()
    with pytest.raises(SmsError) as caught:
        AliyunSmsBackend().send(MESSAGE)
    assert not isinstance(caught.value, SmsPermanentError)


def test_a_template_without_code_alerts_without_calling_the_gateway(gateway, settings):
    settings.KINGUARD_ALIYUN_SMS_TEMPLATES = {}
    with pytest.raises(SmsAlertError, match="results_viewed"):
        AliyunSmsBackend().send(MESSAGE)
    assert gateway.requests == []


def test_missing_credentials_are_a_configuration_error(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.KINGUARD_ALIYUN_SMS_ACCESS_KEY_ID = ""
    with pytest.raises(ImproperlyConfigured, match="KINGUARD_ALIYUN_SMS_ACCESS_KEY_ID"):
        AliyunSmsBackend()


# --- through the notice task --------------------------------------------------------------


@pytest.fixture
def viewed_notice(guardian, elder, authorization) -> Notice:
    from lookups import services
    from lookups.audit import Actor
    from tests.audit.test_notices import granted_lookup

    elder.phone, elder.notify_email = "138 0013 8000", ""
    elder.save(update_fields=["phone", "notify_email"])
    Notice.objects.all().delete()
    lookup = granted_lookup(guardian, elder)
    services.results_view(actor=Actor.for_user(guardian.user), lookup_id=lookup.pk)
    return Notice.objects.get()


@pytest.mark.django_db
def test_notice_goes_out_through_the_gateway_once(gateway, viewed_notice, guardian):
    assert notices.notice_send(notice_id=viewed_notice.pk) == Notice.Status.SENT
    assert notices.notice_send(notice_id=viewed_notice.pk) == Notice.Status.SENT
    [request] = gateway.requests
    assert request["PhoneNumbers"] == "13800138000"
    assert json.loads(request["TemplateParam"])["viewer"] == guardian.full_name
    viewed_notice.refresh_from_db()
    assert viewed_notice.phone_to == "+8613800138000" and viewed_notice.sms_sent_at


@pytest.mark.django_db
def test_a_misconfigured_gateway_gives_up_and_alerts_once_without_personal_data(
    gateway, viewed_notice, elder, guardian, settings, django_capture_on_commit_callbacks
):
    settings.ADMINS = [("Ops", "ops@example.org")]
    gateway.reply = (200, {"Code": "isv.AMOUNT_NOT_ENOUGH", "Message": "balance"})
    with django_capture_on_commit_callbacks(execute=True):
        assert notices.notice_send(notice_id=viewed_notice.pk) == Notice.Status.FAILED
    with django_capture_on_commit_callbacks(execute=True):
        assert notices.notice_send(notice_id=viewed_notice.pk) == Notice.Status.FAILED  # no retry
    assert len(gateway.requests) == 1
    viewed_notice.refresh_from_db()
    assert viewed_notice.sms_given_up_at and viewed_notice.sms_sent_at is None
    assert AuditEvent.objects.filter(action="notice.sms_alert").count() == 1
    assert AuditEvent.objects.filter(action="notice.failed", outcome="gave_up").count() == 1
    [alert] = mail.outbox
    assert alert.to == ["ops@example.org"] and "isv.AMOUNT_NOT_ENOUGH" in alert.body
    for secret in (elder.full_name, guardian.full_name, "13800138000"):
        assert secret not in alert.body and secret not in alert.subject


@pytest.mark.django_db
def test_a_rate_limit_is_retried_then_sent(gateway, viewed_notice):
    gateway.reply = (200, {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "slow down"})
    with pytest.raises(notices.NoticeDeliveryError):
        notices.notice_send(notice_id=viewed_notice.pk)
    gateway.reply = (200, {"Code": "OK", "Message": "OK", "BizId": "1^0"})
    assert notices.notice_send(notice_id=viewed_notice.pk) == Notice.Status.SENT
    assert len(gateway.requests) == 2


@pytest.mark.django_db
def test_an_invalid_stored_number_gives_up_without_calling_the_gateway(gateway, viewed_notice, elder):
    type(elder).objects.filter(pk=elder.pk).update(phone="call the daughter")
    assert notices.notice_send(notice_id=viewed_notice.pk) == Notice.Status.FAILED
    assert gateway.requests == []
    viewed_notice.refresh_from_db()
    assert "InvalidPhoneNumber" in viewed_notice.last_error


# --- development backends -----------------------------------------------------------------


def test_console_backend_logs_no_number_or_names_outside_debug(settings, caplog):
    settings.DEBUG = False
    with caplog.at_level(logging.INFO, logger="kinguard.sms"):
        ConsoleSmsBackend().send(MESSAGE)
    logged = caplog.text
    assert "+86138****8000" in logged and "results_viewed" in logged
    for secret in ("13800138000", "王小明", "东城诊所", MESSAGE.text):
        assert secret not in logged


def test_console_backend_shows_everything_under_debug(settings, caplog):
    settings.DEBUG = True
    with caplog.at_level(logging.INFO, logger="kinguard.sms"):
        ConsoleSmsBackend().send(MESSAGE)
    assert "+8613800138000" in caplog.text and "王小明" in caplog.text


def test_file_backend_writes_no_personal_data_outside_debug(settings, tmp_path):
    settings.DEBUG = False
    settings.KINGUARD_SMS_FILE_PATH = tmp_path / "outbox.jsonl"
    FileSmsBackend().send(MESSAGE)
    written = (tmp_path / "outbox.jsonl").read_text(encoding="utf-8")
    line = json.loads(written)
    assert line["to"] == "+86138****8000" and line["template"] == "results_viewed"
    assert line["params"] == sorted(MESSAGE.params)
    for secret in ("13800138000", "王小明", "东城诊所", "viewed your test results"):
        assert secret not in written


def test_file_backend_keeps_the_text_under_debug(settings, tmp_path):
    settings.DEBUG = True
    settings.KINGUARD_SMS_FILE_PATH = tmp_path / "outbox.jsonl"
    FileSmsBackend().send(MESSAGE)
    assert json.loads((tmp_path / "outbox.jsonl").read_text(encoding="utf-8"))["text"] == MESSAGE.text


def test_sms_params_fit_the_template_limits(settings):
    assert all(len(value) <= notices.SMS_PARAM_MAX for value in MESSAGE.params.values())
    assert sms.aliyun_phone("+8613800138000") == "13800138000"
