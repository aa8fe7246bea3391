"""Normalise existing Person.phone values to E.164 (CN default region).

Numbers that cannot be parsed as a valid mobile number are left exactly as they are (nothing is
lost) and listed on stdout by person id, so the desk can correct them; the number itself is not
printed (personal data stays out of deploy logs). Reversing is a no-op.
"""

from django.db import migrations


def normalize_phones(apps, schema_editor):
    from guardians import phones

    Person = apps.get_model("guardians", "Person")
    invalid: list[int] = []
    changed = 0
    for person in Person.objects.exclude(phone="").only("pk", "phone").iterator():
        try:
            e164 = phones.normalize(person.phone)
        except phones.InvalidPhoneNumber:
            invalid.append(person.pk)
            continue
        if e164 != person.phone:
            Person.objects.filter(pk=person.pk).update(phone=e164)
            changed += 1
    if changed or invalid:
        print(f"\n  phone numbers normalised to E.164: {changed}")
    if invalid:
        print(f"  phone numbers left unchanged (not a valid mobile number), person ids: {invalid}")


class Migration(migrations.Migration):
    dependencies = [
        ("guardians", "0004_merge_0002_staff_workspace_0003_user_preferences"),
    ]

    operations = [
        migrations.RunPython(normalize_phones, migrations.RunPython.noop, elidable=True),
    ]
