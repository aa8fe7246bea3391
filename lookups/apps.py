from django.apps import AppConfig


class LookupsConfig(AppConfig):
    name = "lookups"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out

        from guardians.signals import person_registered

        from .receivers import attach_waiting_results, end_lookups_at_sign_out

        user_logged_out.connect(end_lookups_at_sign_out, dispatch_uid="lookups.end_lookups_at_sign_out")
        person_registered.connect(attach_waiting_results, dispatch_uid="lookups.attach_waiting_results")
