"""The admin of every app (the apps keep their models; their admin classes live here, on the top
floor: docs/design.md section 1). Django's autodiscovery imports this package; importing each
module registers its admins on ``admin.site``."""

from workspace.admin import (
    alerts,
    audit,
    breaks,
    grants,
    ledger,
    orders,
    reconciliation,
    signals,
    site,
)

__all__ = [
    "alerts",
    "audit",
    "breaks",
    "grants",
    "ledger",
    "orders",
    "reconciliation",
    "signals",
    "site",
]
