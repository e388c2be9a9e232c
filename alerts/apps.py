from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Alerts listen to the floors below (docs/design.md section 1): they announce, they
        # never call alerts.
        from audit.signals import verification_finished
        from reconciliation.signals import run_finished

        from .receivers import on_run_finished, on_verification_finished

        run_finished.connect(on_run_finished, dispatch_uid="alerts.run_finished")
        verification_finished.connect(
            on_verification_finished, dispatch_uid="alerts.verification_finished"
        )
