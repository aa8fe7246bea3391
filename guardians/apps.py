from django.apps import AppConfig


class GuardiansConfig(AppConfig):
    name = "guardians"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from config.middleware import start_session_clock

        user_logged_in.connect(start_session_clock, dispatch_uid="kinguard-session-clock")
