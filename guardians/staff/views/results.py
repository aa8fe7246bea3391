"""Test results: list, record one, lab file import (preview → confirm → task), the sampling photo."""

from __future__ import annotations

import time

from django.contrib import messages
from django.http import FileResponse, Http404, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from guardians import permissions, selectors
from guardians.staff import forms
from guardians.typing import AuthenticatedHttpRequest
from lookups import services as lookup_services
from lookups.audit import Actor

from .common import (
    A,
    _page,
    _param,
    _query,
    _uuid_or_404,
    staff_view,
)

# --- results ------------------------------------------------------------------------------


@staff_view()
def results(request: AuthenticatedHttpRequest) -> HttpResponse:
    query = _query(request)
    return render(
        request,
        "staff/results.html",
        {
            "page": _page(request, selectors.results_list(request.user, query=query)),
            "q": query,
            "can_record": permissions.staff_clinics(request.user, A.RECORD_RESULTS).exists(),
            "nav": "results",
        },
    )


@staff_view(A.RECORD_RESULTS)
def result_new(request: AuthenticatedHttpRequest) -> HttpResponse:
    elder = selectors.person_for(request.user, _uuid_or_404(_param(request, "elder")), A.RECORD_RESULTS)
    if elder is None or not elder.is_elder:
        raise Http404
    form = forms.ResultForm(
        request.POST or None, request.FILES or None, initial={"elder": elder.public_id}, user=request.user
    )
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                lookup_services.result_record(
                    actor=Actor.from_request(request),
                    elder=data["elder"],
                    kind=data["kind"],
                    sampled_at=data["sampled_at"],
                    site=data["site"],
                    lab=data["lab"],
                    result=data["result"],
                    reported_at=data["reported_at"],
                    sampling_photo=data["sampling_photo"],
                )
            except lookup_services.LookupRefused as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, _("The result is recorded."))
                return redirect("staff:person", elder.public_id)
        status = 400
    return render(request, "staff/result_form.html", {"form": form, "elder": elder, "nav": "results"}, status=status)


_STALE_SECONDS = 15 * 60  # a running import not updated for this long has died (rolled back)


def _import_context(form) -> dict:
    return {
        "form": form,
        "columns": lookup_services.RESULTS_CSV_COLUMNS,
        "max_rows": lookup_services.RESULTS_CSV_MAX_ROWS,
        "max_mb": lookup_services.RESULTS_CSV_MAX_BYTES // (1024 * 1024),
        "nav": "results",
    }


@staff_view(A.RECORD_RESULTS)
def results_import(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Upload a lab file (CSV UTF-8/GB18030 or .xlsx): checked completely, nothing written, then
    a preview of every row to import and every per-line problem. A clean file is staged
    server-side and confirmed by its signed token (:func:`results_import_confirm`)."""
    form = forms.ResultsImportForm(request.POST or None, request.FILES or None, user=request.user)
    context = _import_context(form)
    if request.method != "POST":
        return render(request, "staff/results_import.html", context)
    if not form.is_valid():
        return render(request, "staff/results_import.html", context, status=400)
    clinic = form.cleaned_data["clinic"]
    data = form.cleaned_data["file"].read(lookup_services.RESULTS_CSV_MAX_BYTES + 1)
    actor = Actor.from_request(request)
    preview = lookup_services.results_import_preview(actor=actor, clinic=clinic, data=data)
    if preview.rejected:
        context["rejected"] = preview.rejected
        return render(request, "staff/results_import.html", context, status=400)
    context.update({"preview": preview, "clinic": clinic})
    if preview.problems:
        context["rejected"] = _(
            "Nothing was imported: %(lines)d of %(rows)d rows have problems. "
            "Correct them and import the whole file again."
        ) % {"lines": preview.problem_lines, "rows": preview.total_rows}
        context["errors"] = preview.problems
        return render(request, "staff/results_import.html", context, status=400)
    token = lookup_services.results_import_stage(actor=actor, clinic=clinic, data=data, rows=len(preview.rows))
    context["confirm"] = forms.ResultsImportConfirmForm(initial={"token": token})
    return render(request, "staff/results_import.html", context)


@staff_view(A.RECORD_RESULTS)
@require_POST
def results_import_confirm(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Start the import of a previewed file: only its signed token comes back, never rows."""
    form = forms.ResultsImportConfirmForm(request.POST)
    context = _import_context(forms.ResultsImportForm(user=request.user))
    if not form.is_valid():
        context["rejected"] = _("This preview is not valid. Upload the file again.")
        return render(request, "staff/results_import.html", context, status=400)
    try:
        key = lookup_services.results_import_start(actor=Actor.from_request(request), token=form.cleaned_data["token"])
    except lookup_services.StagedImportInvalid as exc:
        context["rejected"] = str(exc)
        return render(request, "staff/results_import.html", context, status=400)
    except lookup_services.ImportNotStarted as exc:
        context["rejected"] = str(exc)
        return render(request, "staff/results_import.html", context, status=503)
    return redirect("staff:results_import_status", key)


@staff_view(A.RECORD_RESULTS)
def results_import_status(request: AuthenticatedHttpRequest, key: str) -> HttpResponse:
    """The import's progress; reloads itself every 2 s until it is finished (no script)."""
    try:
        status = lookup_services.results_import_status(user=request.user, key=key)
    except lookup_services.StagedImportInvalid as exc:
        raise Http404 from exc
    state = status.get("state")
    if state in ("queued", "running") and time.time() - status.get("updated", 0) > _STALE_SECONDS:
        state = "stalled"
    context = {"status": status, "state": state, "nav": "results"}
    response = render(request, "staff/results_import_status.html", context)
    if state in ("queued", "running"):
        response["Refresh"] = "2"
    return response


@staff_view(A.VIEW_SAMPLING_PHOTO)
def result_photo(request: AuthenticatedHttpRequest, pk: int) -> HttpResponseBase:
    """The sampling photo, staff only: a typed reason first (audited), then streamed privately."""
    result = selectors.result_for(request.user, pk, A.VIEW_SAMPLING_PHOTO)
    if result is None or not result.sampling_photo:
        raise Http404
    form = forms.PhotoReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            handle, content_type = lookup_services.result_sampling_photo_open(
                actor=Actor.from_request(request), result_id=result.pk, reason=form.cleaned_data["reason"]
            )
        except lookup_services.LookupNotFound as exc:
            raise Http404 from exc
        except lookup_services.LookupRefused as exc:
            form.add_error("reason", str(exc))
        else:
            response = FileResponse(handle, content_type=content_type)
            response["Content-Disposition"] = "inline"
            response["Content-Security-Policy"] = "default-src 'none'; img-src 'self'"
            return response
    status = 400 if request.method == "POST" else 200
    return render(request, "staff/result_photo.html", {"result": result, "form": form, "nav": "results"}, status=status)
