# Elder mode and language preference on the login account (issue 6).

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("guardians", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="large_text",
            field=models.BooleanField(default=False, verbose_name="large text, high contrast"),
        ),
        migrations.AddField(
            model_name="user",
            name="preferred_language",
            field=models.CharField(
                blank=True, choices=settings.LANGUAGES, max_length=10, verbose_name="preferred language"
            ),
        ),
    ]
