from django.apps import AppConfig


class EvidenceConfig(AppConfig):
    """Evidence packs (docs/design.md section 19): what an examiner takes away, built from the
    trail of every app below it and checked offline."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "evidence"
