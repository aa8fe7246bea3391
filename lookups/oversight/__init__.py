"""Audit and oversight: completing the audit trail, reports, anomaly flags, elder notices.

Modules: ``catalog`` (the known audit actions and outcomes), ``services`` (audited writes:
login and record-view events, admin changes, the chain check), ``anomalies`` (detector and
the acknowledge/resolve workflow), ``notices`` (elder notices, exactly once), ``sms`` (SMS
backends), ``selectors`` (scoped reads for the audit views), ``charts`` (server-rendered
SVG), ``paginator`` and ``admin`` (the auditors' admin pages).
"""
