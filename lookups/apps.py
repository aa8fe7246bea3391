from django.apps import AppConfig


class LookupsConfig(AppConfig):
    name = "lookups"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out

        from .session_binding import end_lookups_at_sign_out

        user_logged_out.connect(end_lookups_at_sign_out, dispatch_uid="lookups.end_lookups_at_sign_out")
