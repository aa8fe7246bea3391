"""Test results: list, record one, CSV import, the sampling photo (with a typed reason)."""

from __future__ import annotations

from django.contrib import messages
from django.http import FileResponse, Http404, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

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


@staff_view(A.RECORD_RESULTS)
def results_import(request: AuthenticatedHttpRequest) -> HttpResponse:
    """CSV import of a lab export: validated completely, then all rows or none."""
    form = forms.ResultsImportForm(request.POST or None, request.FILES or None, user=request.user)
    context = {
        "form": form,
        "columns": lookup_services.RESULTS_CSV_COLUMNS,
        "max_rows": lookup_services.RESULTS_CSV_MAX_ROWS,
        "max_mb": lookup_services.RESULTS_CSV_MAX_BYTES // (1024 * 1024),
        "nav": "results",
    }
    if request.method == "POST":
        if form.is_valid():
            upload = form.cleaned_data["file"]
            data = upload.read(lookup_services.RESULTS_CSV_MAX_BYTES + 1)
            try:
                created = lookup_services.results_import_csv(
                    actor=Actor.from_request(request), clinic=form.cleaned_data["clinic"], data=data
                )
            except lookup_services.ResultsImportRejected as exc:
                context.update(
                    {"rejected": str(exc), "errors": exc.errors[:100], "more": max(0, len(exc.errors) - 100)}
                )
                return render(request, "staff/results_import.html", context, status=400)
            messages.success(request, _("Imported %(n)d results.") % {"n": len(created)})
            return redirect("staff:results")
        return render(request, "staff/results_import.html", context, status=400)
    return render(request, "staff/results_import.html", context)


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
