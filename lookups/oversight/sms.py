"""SMS backends for elder notices, chosen by ``KINGUARD_SMS_BACKEND`` (a dotted path).

A production backend for a real SMS gateway subclasses ``BaseSmsBackend`` and raises
``SmsError`` on a failed delivery (the notice task then retries with backoff). Shipped:
``ConsoleSmsBackend`` (logs), ``FileSmsBackend`` (appends to ``KINGUARD_SMS_FILE_PATH``,
for development) and ``LocmemSmsBackend`` (keeps messages in ``outbox``, for tests).
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

logger = logging.getLogger("kinguard.sms")


class SmsError(Exception):
    """The message was not delivered; safe to retry."""


class BaseSmsBackend:
    def send(self, *, to: str, text: str) -> None:
        raise NotImplementedError


class ConsoleSmsBackend(BaseSmsBackend):
    def send(self, *, to: str, text: str) -> None:
        logger.info("SMS to %s: %s", to, text)


class FileSmsBackend(BaseSmsBackend):
    """One JSON line per message, appended to ``KINGUARD_SMS_FILE_PATH``."""

    _lock = threading.Lock()

    def send(self, *, to: str, text: str) -> None:
        path = Path(settings.KINGUARD_SMS_FILE_PATH)
        line = json.dumps({"at": timezone.now().isoformat(), "to": to, "text": text}, ensure_ascii=False)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock, path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        except OSError as exc:
            raise SmsError(f"could not write {path}: {exc.strerror}") from exc


class LocmemSmsBackend(BaseSmsBackend):
    outbox: list[dict[str, str]] = []

    def send(self, *, to: str, text: str) -> None:
        LocmemSmsBackend.outbox.append({"to": to, "text": text})


def get_sms_backend() -> BaseSmsBackend:
    return import_string(settings.KINGUARD_SMS_BACKEND)()
