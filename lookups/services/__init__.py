"""The lookup state machine and the results services, by domain.

awaiting_otp → awaiting_face → checking_face → granted → expired; any non-final state →
denied / cancelled / expired.

Every transition locks the lookup row (``select_for_update`` inside ``atomic``; lock order
is always lookup, then face check, then user), refuses illegal starting states, re-checks
the authorization, writes its audit event in the same transaction and publishes Celery
work after commit (``lookups.task_queue.publish_on_commit``). Refusals are decided inside
the transaction but raised after it commits, so the denial and its audit event are kept.

Modules: ``common`` (errors, lock and guard helpers), ``steps`` (the guardian's steps),
``probes`` (probe files), ``face_checks`` (the worker's run and verdict), ``results``
(viewing and recording results), ``results_import`` (lab file checks and the import),
``results_import_jobs`` (preview → confirm → task), ``sweeps`` (the periodic sweep). This package
re-exports their public names; patch a name in the module that uses it.
"""

from .common import FaceCheckingUnavailable, LookupNotFound, LookupRefused, Outcome, State
from .face_checks import face_check_abandon, face_check_not_queued, face_check_run
from .probes import delete_probe
from .results import RESULT_FIELDS, ResultsView, result_record, result_sampling_photo_open, result_save, results_view
from .results_import import (
    RESULTS_CSV_COLUMNS,
    RESULTS_CSV_MAX_BYTES,
    RESULTS_CSV_MAX_ROWS,
    ImportRowError,
    ResultsImportRejected,
    results_import_check,
    results_import_csv,
    results_import_validate,
)
from .results_import_jobs import (
    ImportNotStarted,
    StagedImportInvalid,
    results_import_preview,
    results_import_stage,
    results_import_start,
    results_import_status,
)
from .steps import (
    face_retry_not_before,
    lookup_cancel,
    lookup_start,
    lookup_status,
    lookup_submit_face,
    lookup_verify_otp,
    lookups_end_for_session,
)
from .sweeps import sweep_stale

__all__ = [
    "RESULTS_CSV_COLUMNS",
    "RESULTS_CSV_MAX_BYTES",
    "RESULTS_CSV_MAX_ROWS",
    "RESULT_FIELDS",
    "FaceCheckingUnavailable",
    "ImportNotStarted",
    "ImportRowError",
    "LookupNotFound",
    "LookupRefused",
    "Outcome",
    "ResultsImportRejected",
    "ResultsView",
    "StagedImportInvalid",
    "State",
    "delete_probe",
    "face_check_abandon",
    "face_check_not_queued",
    "face_check_run",
    "face_retry_not_before",
    "lookup_cancel",
    "lookup_start",
    "lookup_status",
    "lookup_submit_face",
    "lookup_verify_otp",
    "lookups_end_for_session",
    "result_record",
    "result_sampling_photo_open",
    "result_save",
    "results_import_check",
    "results_import_csv",
    "results_import_preview",
    "results_import_stage",
    "results_import_start",
    "results_import_status",
    "results_import_validate",
    "results_view",
    "sweep_stale",
]
