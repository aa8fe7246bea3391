"""The periodic sweep: stale face checks, expired lookups and grants, orphan probe files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction

from ..audit import Actor
from ..models import FaceCheck, LookupRequest
from .common import (
    Outcome,
    State,
    _audit_step,
    _expire_if_due,
    _locked_lookup,
    _now,
    _touch,
)
from .probes import delete_probe

if TYPE_CHECKING:
    pass


def sweep_stale(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Expire lookups and face checks stuck beyond their limits (run by Celery beat).

    A check still queued or running after KINGUARD_FACE_CHECK_STALE_SECONDS is closed as
    expired and its probe deleted, and its lookup goes back to the face step (or expires),
    so nothing waits forever.
    """
    now = now or _now()
    actor = Actor.system("sweeper")
    counts = {"checks": 0, "lookups": 0}
    stale_before = now - dt.timedelta(seconds=settings.KINGUARD_FACE_CHECK_STALE_SECONDS)
    stale_checks = FaceCheck.objects.exclude(state=FaceCheck.State.DONE).filter(created_at__lt=stale_before)
    for check_id, lookup_id in stale_checks.values_list("id", "lookup_id"):
        with transaction.atomic():
            lookup = _locked_lookup(lookup_id, None)
            check = FaceCheck.objects.select_for_update().get(pk=check_id)
            if check.state == FaceCheck.State.DONE:
                continue
            delete_probe(check.probe_path)
            check.state, check.outcome, check.probe_path, check.finished_at = (
                FaceCheck.State.DONE,
                Outcome.EXPIRED,
                "",
                now,
            )
            check.save(update_fields=["state", "outcome", "probe_path", "finished_at"])
            _audit_step(
                lookup,
                actor=actor,
                action="face.expired",
                outcome="expired",
                target=check,
            )
            if lookup.state == State.CHECKING_FACE:
                lookup.state = State.AWAITING_FACE
                _touch(lookup, ["state"])
            counts["checks"] += 1
    lookup_deadline = now - dt.timedelta(minutes=settings.KINGUARD_LOOKUP_TTL_MINUTES)
    open_ids = LookupRequest.objects.filter(
        state__in=[State.AWAITING_OTP, State.AWAITING_FACE, State.CHECKING_FACE], created_at__lt=lookup_deadline
    ).values_list("id", flat=True)
    granted_ids = LookupRequest.objects.filter(state=State.GRANTED, grant_expires_at__lte=now).values_list(
        "id", flat=True
    )
    for lookup_id in [*open_ids, *granted_ids]:
        with transaction.atomic():
            lookup = _locked_lookup(lookup_id, None)
            if _expire_if_due(lookup, actor, now):
                counts["lookups"] += 1
    counts["probes"] = _sweep_orphan_probes(stale_before)
    return counts


def _sweep_orphan_probes(older_than: dt.datetime) -> int:
    """Delete probe files that no open check refers to, once older than the stale limit.

    Normally a probe is deleted when its check ends; this catches the rest (a worker killed
    between committing the verdict and deleting the file, a web process killed between
    writing the file and committing). Files younger than the limit are left alone: their
    check's transaction may still be open. No lock needed: only ended checks' files go.
    """
    root = Path(settings.PROBE_DIR)
    if not root.is_dir():
        return 0
    open_ids = {
        str(check_id) for check_id in FaceCheck.objects.exclude(state=FaceCheck.State.DONE).values_list("id", flat=True)
    }
    cutoff = older_than.timestamp()
    removed = 0
    for path in root.glob("*.npz"):
        try:
            if path.stem in open_ids or path.stat().st_mtime >= cutoff:
                continue
            path.unlink()
        except FileNotFoundError:
            continue
        removed += 1
    return removed


# --- results recorded by staff ------------------------------------------------------------


def sweep_results_imports() -> dict[str, int]:
    """Give up abandoned lab file imports and delete their stale staged files (Celery beat);
    see :func:`results_import_jobs.results_import_sweep`."""
    from .results_import_jobs import results_import_sweep

    return results_import_sweep()
