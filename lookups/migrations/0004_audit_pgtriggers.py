"""Declare the audit tables' guards with django-pgtrigger (PostgreSQL only; no-op on SQLite).

lookups_auditevent: UPDATE, DELETE (row) and TRUNCATE (statement) refused.
lookups_auditchainhead: UPDATE only if last_sequence increases; DELETE and TRUNCATE refused.
The hand-written row trigger of 0002 is replaced by audit_event_append_only.
"""

import pgtrigger.compiler
import pgtrigger.migrations
from django.db import migrations

OLD_TRIGGER = "lookups_auditevent_append_only"


def drop_0002_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {OLD_TRIGGER} ON lookups_auditevent")
        schema_editor.execute("DROP FUNCTION IF EXISTS kinguard_audit_append_only()")


def restore_0002_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        import importlib

        old = importlib.import_module("lookups.migrations.0002_audit_chain_head_and_append_only")
        schema_editor.execute(old.APPEND_ONLY_SQL)


class Migration(migrations.Migration):
    dependencies = [
        ("lookups", "0003_oversight"),
    ]

    operations = [
        migrations.RunPython(drop_0002_trigger, restore_0002_trigger),
        pgtrigger.migrations.AddTrigger(
            model_name="auditchainhead",
            trigger=pgtrigger.compiler.Trigger(
                name="audit_head_forward_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    condition='WHEN (NEW."last_sequence" <= (OLD."last_sequence"))',
                    func="RAISE EXCEPTION '% is append-only: an UPDATE that does not increase last_sequence refused', TG_TABLE_NAME; RETURN NULL;",
                    hash="a2abfeb8469c7cf1e690224632ef573ef9f1befa",
                    operation="UPDATE",
                    pgid="pgtrigger_audit_head_forward_only_63add",
                    table="lookups_auditchainhead",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="auditchainhead",
            trigger=pgtrigger.compiler.Trigger(
                name="audit_head_no_delete",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION '% is append-only: DELETE refused', TG_TABLE_NAME; RETURN NULL;",
                    hash="425537e292ba1c4664dbef1df6bd110e838cdef0",
                    operation="DELETE",
                    pgid="pgtrigger_audit_head_no_delete_a1269",
                    table="lookups_auditchainhead",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="auditchainhead",
            trigger=pgtrigger.compiler.Trigger(
                name="audit_head_no_truncate",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION '% is append-only: TRUNCATE refused', TG_TABLE_NAME; RETURN NULL;",
                    hash="a447829d2366dba90f28b28b369e3278fa3a0b28",
                    level="STATEMENT",
                    operation="TRUNCATE",
                    pgid="pgtrigger_audit_head_no_truncate_52ff6",
                    table="lookups_auditchainhead",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="auditevent",
            trigger=pgtrigger.compiler.Trigger(
                name="audit_event_append_only",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION '% is append-only: UPDATE and DELETE refused', TG_TABLE_NAME; RETURN NULL;",
                    hash="3facb08d9f0ed2b84bd0e2a1c50396f1f7254005",
                    operation="UPDATE OR DELETE",
                    pgid="pgtrigger_audit_event_append_only_f81f2",
                    table="lookups_auditevent",
                    when="BEFORE",
                ),
            ),
        ),
        pgtrigger.migrations.AddTrigger(
            model_name="auditevent",
            trigger=pgtrigger.compiler.Trigger(
                name="audit_event_no_truncate",
                sql=pgtrigger.compiler.UpsertTriggerSql(
                    func="RAISE EXCEPTION '% is append-only: TRUNCATE refused', TG_TABLE_NAME; RETURN NULL;",
                    hash="fbce6afaedd4cde9a91fbd120102f8204ddc61c9",
                    level="STATEMENT",
                    operation="TRUNCATE",
                    pgid="pgtrigger_audit_event_no_truncate_a890a",
                    table="lookups_auditevent",
                    when="BEFORE",
                ),
            ),
        ),
    ]
