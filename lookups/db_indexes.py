"""Index types for append-only tables (``lookups_auditevent``)."""

from __future__ import annotations

from django.contrib.postgres.indexes import BrinIndex
from django.db.models import Index


class AppendOrderedIndex(BrinIndex):
    """A BRIN index on PostgreSQL, a plain B-tree elsewhere (SQLite has no BRIN).

    For a column that grows with the physical order of an append-only table (an audit
    event's ``created_at`` follows its ``sequence``, and rows are only appended): a BRIN
    index stores one min/max summary per ``pages_per_range`` heap pages, so appending a
    row costs at most one summary update (none while its page range is not yet summarised,
    ``autosummarize`` summarises it once full), instead of a B-tree insertion. A range query
    reads the matching page ranges and rechecks their rows.
    """

    def create_sql(self, model, schema_editor, using="", **kwargs):
        if schema_editor.connection.vendor != "postgresql":
            return Index.create_sql(self, model, schema_editor, using=using, **kwargs)
        return super().create_sql(model, schema_editor, using=using, **kwargs)
