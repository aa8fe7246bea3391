from django.db import migrations

APPEND_ONLY_SQL = """
CREATE OR REPLACE FUNCTION kinguard_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'lookups_auditevent is append-only: UPDATE and DELETE are refused';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS lookups_auditevent_append_only ON lookups_auditevent;
CREATE TRIGGER lookups_auditevent_append_only
    BEFORE UPDATE OR DELETE ON lookups_auditevent
    FOR EACH ROW EXECUTE FUNCTION kinguard_audit_append_only();
"""
DROP_SQL = """
DROP TRIGGER IF EXISTS lookups_auditevent_append_only ON lookups_auditevent;
DROP FUNCTION IF EXISTS kinguard_audit_append_only();
"""


def create_head(apps, schema_editor):
    apps.get_model("lookups", "AuditChainHead").objects.get_or_create(pk=1)


def append_only_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(APPEND_ONLY_SQL)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_SQL)


class Migration(migrations.Migration):
    dependencies = [("lookups", "0001_initial")]

    operations = [
        migrations.RunPython(create_head, migrations.RunPython.noop),
        migrations.RunPython(append_only_trigger, drop_trigger),
    ]
