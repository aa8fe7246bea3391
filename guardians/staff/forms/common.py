"""Widgets and names shared by the staff workspace forms."""

from __future__ import annotations

from django import forms

from guardians import permissions

A = permissions.StaffAction
DATE_INPUT = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
DATETIME_INPUT = forms.DateTimeInput(attrs={"type": "datetime-local", "step": 60}, format="%Y-%m-%dT%H:%M")
