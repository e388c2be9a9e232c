"""How Alpaca's order statuses map onto an OrderAttempt's lifecycle (pure: no Django, no I/O).

Alpaca adds statuses from time to time; an unknown one is treated as still open (never as a
terminal fact) and kept verbatim in ``OrderAttempt.broker_status``.
"""

# Values equal OrderAttempt.Status values.
OPEN = "open"
PARTIALLY_FILLED = "partially_filled"
FILLED = "filled"
CANCELED = "canceled"
EXPIRED = "expired"
REJECTED = "rejected"

_TERMINAL = {
    "filled": FILLED,
    "canceled": CANCELED,
    "expired": EXPIRED,
    "rejected": REJECTED,
    # A replaced order lives on as its replacement; this attempt is over.
    "replaced": CANCELED,
}
TERMINAL_BROKER_STATUSES = frozenset(_TERMINAL)


def attempt_status_for(broker_status: str) -> str:
    """The attempt status that corresponds to Alpaca's order ``broker_status``."""
    status = broker_status.lower()
    if status in _TERMINAL:
        return _TERMINAL[status]
    if status == "partially_filled":
        return PARTIALLY_FILLED
    return OPEN


def is_terminal(broker_status: str) -> bool:
    return broker_status.lower() in TERMINAL_BROKER_STATUSES
