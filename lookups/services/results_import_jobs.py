"""A checked lab file, staged for its import: preview → confirm → a Celery task, all or nothing.

The preview step stores the uploaded bytes server-side under a random key (in the private
storage, shared by web hosts and workers as the sampling photos are) and hands the browser a
*signed* token binding that key to the staff user, the clinic and the file's SHA-256, valid
for :data:`STAGE_SECONDS`. The confirm step never trusts resubmitted rows: it opens the staged
file by the token (a forged, expired, other user's or other clinic's token is refused) and
the worker re-reads and re-checks it with :func:`results_import_csv`, which writes every row
in one transaction or nothing. The import's progress lives in a small JSON status file next
to the upload, written atomically (``os.replace``); the status page reads it.

A confirm is claimed once and a run starts once (``O_EXCL`` markers): a double click or a
message delivered twice imports the file once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core import signing
from django.utils import translation
from django.utils.translation import gettext as _
from kombu.exceptions import OperationalError as BrokerUnavailable

from guardians import permissions
from guardians.models import Clinic, User

from .. import task_queue
from ..audit import Actor
from ..results_preview import Preview, preview_from_checked
from .results_import import ResultsImportRejected, results_import_csv, results_import_validate

logger = logging.getLogger(__name__)

STAGE_SECONDS = 30 * 60  # how long a preview can be confirmed
UPLOAD_KEEP_SECONDS = STAGE_SECONDS + 3600  # a staged file (ID numbers!) is swept after this
KEEP_SECONDS = 24 * 3600  # status files and markers: swept after a day (on the next stage)
_SALT = "kinguard.results-import.stage"


class StagedImportInvalid(Exception):
    """The token is forged, expired, for someone else, or its file is gone; ``str()`` says so."""


class ImportNotStarted(Exception):
    """The task queue is unavailable: nothing was imported; the preview can be confirmed again."""


@dataclass(frozen=True)
class StagedImport:
    key: str
    user_id: int
    clinic_id: int
    sha256: str


def _dir() -> Path:
    path = Path(settings.PRIVATE_STORAGE_ROOT) / "results-imports"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _paths(key: str) -> tuple[Path, Path, Path]:
    if not (len(key) == 32 and all(c in "0123456789abcdef" for c in key)):
        raise StagedImportInvalid(_("This import is not known. Upload the file again."))
    base = _dir() / key
    return base.with_suffix(".upload"), base.with_suffix(".json"), base.with_suffix(".claimed")


def _write_status(key: str, **changes: Any) -> dict[str, Any]:
    _upload, status_path, _claimed = _paths(key)
    status = read_status(key) if status_path.exists() else {}
    status.update(changes, updated=time.time())
    tmp = status_path.with_suffix(f".{secrets.token_hex(4)}.tmp")
    tmp.write_text(json.dumps(status), encoding="utf-8")
    os.replace(tmp, status_path)
    return status


def read_status(key: str) -> dict:
    _upload, status_path, _claimed = _paths(key)
    try:
        return json.loads(status_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StagedImportInvalid(_("This import is not known. Upload the file again.")) from exc


def _sweep_old() -> int:
    """Delete staged files older than :data:`UPLOAD_KEEP_SECONDS` and status files and markers
    older than :data:`KEEP_SECONDS`; the number of staged files deleted."""
    now = time.time()
    removed = 0
    for path in _dir().iterdir():
        keep = UPLOAD_KEEP_SECONDS if path.suffix == ".upload" else KEEP_SECONDS
        try:
            if path.stat().st_mtime < now - keep:
                path.unlink()
                removed += path.suffix == ".upload"
        except OSError:
            continue
    return removed


def _abandoned_after(state: str) -> float:
    """Seconds without a status update after which a confirmed run is given up: a queued one
    when its staged file is due for deletion anyway, a running one once the task's hard time
    limit has certainly killed its worker (the import's one transaction rolled back)."""
    if state == "queued":
        return UPLOAD_KEEP_SECONDS
    return settings.KINGUARD_RESULTS_IMPORT_SOFT_TIME_LIMIT + 30 + 60


def _claim_abandoned(key: str, status: dict, now: float) -> str | None:
    """The outcome to record if ``key`` is abandoned (claimed so no worker starts it), else None."""
    upload, _status_path, _claimed = _paths(key)
    state = status.get("state")
    age = now - float(status.get("updated", 0))
    if state == "staged":  # previewed, never confirmed: the file goes once the preview is long dead
        return "expired" if upload.exists() and upload.stat().st_mtime < now - UPLOAD_KEEP_SECONDS else None
    if state not in ("queued", "running") or age < _abandoned_after(state):
        return None
    if state == "queued":
        # The worker's own once-only marker: once it exists no worker runs this import. If a
        # worker made it but never wrote "running" (killed), the run is as stale as its status.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(upload.with_suffix(".running"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    return "failed"


def results_import_sweep() -> dict[str, int]:
    """Give up abandoned imports and delete stale staged files (run by Celery beat).

    A preview never confirmed has its staged file (ID numbers) deleted 90 minutes on
    (:data:`UPLOAD_KEEP_SECONDS`) and its status set to ``expired``; a confirmed import whose
    worker died (``queued`` or ``running`` past :func:`_abandoned_after`) is set to ``abandoned``
    with a message in its confirmer's language, and its file deleted. One ``results.import_abandoned``
    event per import, written in one batch before the files change (an audit failure changes
    nothing; the next sweep tries again). Then the old files go as on each upload.
    """
    from django.db import transaction

    from ..audit import AuditEntry, audit_record_many

    now = time.time()
    found: list[tuple[str, dict, str]] = []
    for status_path in _dir().glob("*.json"):
        try:
            status = read_status(status_path.stem)
            outcome = _claim_abandoned(status_path.stem, status, now)
        except (StagedImportInvalid, OSError, ValueError, TypeError):
            continue
        if outcome:
            found.append((status_path.stem, status, outcome))
    clinics = Clinic.objects.in_bulk({status.get("clinic") for _key, status, _outcome in found})
    entries = [
        AuditEntry(
            action="results.import_abandoned",
            outcome=outcome,
            clinic=clinics.get(status.get("clinic")),
            details={
                "import": key,
                "state": status.get("state"),
                "rows": status.get("rows"),
                "user": status.get("user"),
            },
        )
        for key, status, outcome in found
    ]
    with transaction.atomic():
        audit_record_many(Actor.system("sweeper"), entries)
    deleted = 0
    for key, status, outcome in found:
        upload, _status_path, _claimed = _paths(key)
        deleted += upload.exists()
        upload.unlink(missing_ok=True)
        with translation.override(status.get("language") or settings.LANGUAGE_CODE):
            if outcome == "expired":
                _write_status(key, state="expired", message=_("This preview has expired. Upload the file again."))
            else:
                message = _("The import did not finish. Nothing was imported; upload the file again.")
                _write_status(key, state="abandoned", message=message, abandoned=now)
    counts = {"expired": sum(o == "expired" for *_r, o in found), "abandoned": sum(o == "failed" for *_r, o in found)}
    counts["files"] = deleted + _sweep_old()
    return counts


def results_import_preview(*, actor: Actor, clinic: Clinic, data: bytes) -> Preview:
    """What importing ``data`` would do, written nowhere: the import's own checks
    (:func:`results_import_validate`), shaped for the preview page."""
    try:
        checked = results_import_validate(actor=actor, clinic=clinic, data=data)
    except ResultsImportRejected as exc:
        return Preview(rejected=str(exc))
    return preview_from_checked(checked)


def results_import_stage(*, actor: Actor, clinic: Clinic, data: bytes, rows: int) -> str:
    """Store a file that passed every check and return the signed token that confirms it."""
    if actor.user is None or not permissions.staff_can(actor.user, permissions.StaffAction.RECORD_RESULTS, clinic):
        raise StagedImportInvalid(_("You may not record results for this clinic."))
    _sweep_old()
    key = secrets.token_hex(16)
    upload, _status, _claimed = _paths(key)
    upload.write_bytes(data)
    upload.chmod(0o600)
    digest = hashlib.sha256(data).hexdigest()
    _write_status(
        key,
        state="staged",
        user=actor.user.pk,
        clinic=clinic.pk,
        rows=rows,
        done=0,
        language=translation.get_language() or settings.LANGUAGE_CODE,
    )
    return signing.dumps({"k": key, "u": actor.user.pk, "c": clinic.pk, "h": digest}, salt=_SALT)


def staged_import_open(*, user: User, token: str) -> StagedImport:
    """The staged import the token names, if it is valid, unexpired and this user's (who may
    still record results at its clinic)."""
    try:
        payload = signing.loads(token or "", salt=_SALT, max_age=STAGE_SECONDS)
    except signing.SignatureExpired as exc:
        raise StagedImportInvalid(_("This preview has expired. Upload the file again.")) from exc
    except signing.BadSignature as exc:
        raise StagedImportInvalid(_("This preview is not valid. Upload the file again.")) from exc
    staged = StagedImport(key=str(payload["k"]), user_id=payload["u"], clinic_id=payload["c"], sha256=payload["h"])
    status = read_status(staged.key)
    if staged.user_id != user.pk or status.get("user") != user.pk or status.get("clinic") != staged.clinic_id:
        raise StagedImportInvalid(_("This preview is not valid. Upload the file again."))
    clinic = Clinic.objects.filter(pk=staged.clinic_id).first()
    if clinic is None or not permissions.staff_can(user, permissions.StaffAction.RECORD_RESULTS, clinic):
        raise StagedImportInvalid(_("You may not record results for this clinic."))
    return staged


def results_import_start(*, actor: Actor, token: str) -> str:
    """Confirm a preview: queue its import (once) and return the key of its status."""
    if actor.user is None:
        raise StagedImportInvalid(_("This preview is not valid. Upload the file again."))
    staged = staged_import_open(user=actor.user, token=token)
    _upload, _status, claimed = _paths(staged.key)
    try:
        fd = os.open(claimed, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return staged.key  # already confirmed: show the same import's progress
    os.close(fd)
    _write_status(staged.key, state="queued", ip=actor.ip, user_agent=actor.user_agent, sha256=staged.sha256)
    try:
        task_queue.publish_on_commit(task_queue.RUN_RESULTS_IMPORT, staged.key)
    except BrokerUnavailable as exc:
        logger.warning("results import %s could not be queued: broker unavailable", staged.key)
        claimed.unlink(missing_ok=True)
        _write_status(staged.key, state="staged")
        raise ImportNotStarted(
            _("The import could not be started (the task queue is not available). Nothing was imported; try again.")
        ) from exc
    return staged.key


def results_import_status(*, user: User, key: str) -> dict:
    status = read_status(key)
    if status.get("user") != user.pk:
        raise StagedImportInvalid(_("This import is not known. Upload the file again."))
    return status


def results_import_run(*, key: str) -> str:
    """The worker's part: re-read and re-check the staged file, import it all or nothing.

    Messages are written in the language of the staff member who confirmed."""
    status = read_status(key)
    with translation.override(status.get("language") or settings.LANGUAGE_CODE):
        return _run(key, status)


def _run(key: str, status: dict) -> str:
    upload, _status_path, _claimed = _paths(key)
    if status.get("state") not in ("queued",):
        return status.get("state", "")  # already run (a redelivered message) or never confirmed
    user = User.objects.filter(pk=status["user"]).first()
    clinic = Clinic.objects.filter(pk=status["clinic"]).first()
    try:
        data = upload.read_bytes()
    except OSError:
        data = b""
    if user is None or clinic is None or hashlib.sha256(data).hexdigest() != status.get("sha256"):
        _write_status(key, state="failed", message=_("The staged file is gone or changed. Nothing was imported."))
        return "failed"
    actor = Actor(user=user, label=user.get_username(), ip=status.get("ip"), user_agent=status.get("user_agent", ""))
    try:  # one run per import, even if the message is delivered twice at the same moment
        os.close(os.open(upload.with_suffix(".running"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return "running"
    _write_status(key, state="running", started=time.time())
    try:
        created = results_import_csv(actor=actor, clinic=clinic, data=data)
    except ResultsImportRejected as exc:
        errors = [{"line": e.line, "message": str(e.message)} for e in exc.errors]
        _write_status(key, state="refused", message=str(exc), errors=errors)
        upload.unlink(missing_ok=True)
        return "refused"
    except Exception:
        _write_status(key, state="failed", message=_("The import failed. Nothing was imported; upload the file again."))
        raise
    _write_status(key, state="done", done=len(created), finished=time.time())
    upload.unlink(missing_ok=True)
    return "done"
