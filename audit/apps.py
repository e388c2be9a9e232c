from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit integrity"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The ground floor's /metrics reports the chain's state without importing this app.
        from brokerops import readings

        from .services import audit_chain_intact

        readings.audit_chain_intact.provide(audit_chain_intact)
