"""Fewer, leaner indexes on lookups_auditevent (issue 13: each one is paid for under the
chain-head lock by every append, README "Audit and oversight").

* ``(action, created_at)`` dropped: no oversight read chooses it at 1M events (the dashboard
  and the anomaly windows read the ``created_at`` index, the counts the action index).
* ``(x, -sequence)`` -> ``(x, sequence)`` for action, subject, actor, clinic and actor_label:
  the same lookups (read backwards for newest first) without the half-empty pages that
  appending into descending groups leaves (each new row went to the left of its group).

New indexes are built before the old ones are dropped, so no read is ever unindexed.
Reversible: backwards rebuilds the indexes of 0012. Plain (locking) CREATE INDEX: on a large
log run it in a quiet period (about 1-2 s per index per million events on the dev box).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("lookups", "0012_audit_event_references_unconstrained"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["action", "sequence"], name="audit_action_seq_idx"),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["subject", "sequence"], name="audit_subject_seq_idx"),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["actor", "sequence"], name="audit_actor_seq_idx"),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["clinic", "sequence"], name="audit_clinic_seq_asc_idx"),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["actor_label", "sequence"], name="audit_actor_label_seq_asc_idx"),
        ),
        migrations.RemoveIndex(model_name="auditevent", name="lookups_aud_action_a74763_idx"),
        migrations.RemoveIndex(model_name="auditevent", name="lookups_aud_subject_ffa21b_idx"),
        migrations.RemoveIndex(model_name="auditevent", name="lookups_aud_actor_i_7d8d31_idx"),
        migrations.RemoveIndex(model_name="auditevent", name="audit_clinic_seq_idx"),
        migrations.RemoveIndex(model_name="auditevent", name="audit_action_time_idx"),
        migrations.RemoveIndex(model_name="auditevent", name="audit_actor_label_seq_idx"),
    ]
