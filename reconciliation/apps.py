from django.apps import AppConfig


class ReconciliationConfig(AppConfig):
    name = "reconciliation"
    verbose_name = "Reconciliation"

    def ready(self) -> None:
        # The ground floor's probes report the last successful run without importing this app
        # (docs/design.md section 1): it is handed the reader here.
        from brokerops import readings

        from .readings import last_successful_run_finished_at

        readings.last_successful_run_finished_at.provide(last_successful_run_finished_at)
