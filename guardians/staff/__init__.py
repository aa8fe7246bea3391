"""The clinic staff workspace (``/staff/``, namespace ``staff``): views, forms and urls.

The one desk for writes: every page parses, checks what to show with ``guardians.permissions``
and calls a service (``guardians.services`` / ``lookups.services``), which enforces the rule.
"""
