"""A signal following a corporate action (docs/design.md section 18.4): the one transition that
moves an ACTIVE signal's expected holding (its ``filled_qty``) and symbol without an order.

It is an ``ACTIVE -> ACTIVE`` transition of the store (conditional on the version the decision
was made on, like every other), writing the new quantity and symbol, the activities followed
(appended to ``followed_activities``, one id a line: an activity is followed once) and a
``status_reason`` naming them. Its caller records it in the audit trail
(``orders.lifecycle.signals_move_record``: an event on the signal's order, and the run's
record). Pure: builds the transition, writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from brokerops.intent.numbers import NUMBER_MAX, NUMBER_RESOLUTION
from brokerops.intent.signal_model import Signal, SignalStatus
from brokerops.intent.store import Transition


class FollowRefused(ValueError):
    """The move cannot be written as a signal's quantity (the message says why)."""


def follow_transition(
    signal: Signal, *, qty: Decimal, symbol: str, activity_ids: Sequence[str], reason: str
) -> Transition:
    """The transition moving ``signal`` (ACTIVE, as read) to hold ``qty`` (unsigned) of
    ``symbol``, having followed ``activity_ids``. :class:`FollowRefused` for a quantity a signal
    cannot hold (not positive, finer than 1e-9) or an activity already followed."""
    if not qty.is_finite() or not 0 < qty < NUMBER_MAX:
        raise FollowRefused(f"a followed quantity must be positive and below 1e12, not {qty}")
    if qty % NUMBER_RESOLUTION:
        raise FollowRefused(f"{qty} is finer than a signal's quantity (1e-9)")
    again = sorted(set(activity_ids) & set(signal.followed_activities))
    if again or not activity_ids:
        raise FollowRefused(f"activity {', '.join(again) or '(none)'} already followed")
    followed = "\n".join((*signal.followed_activities, *activity_ids))
    return Transition(
        signal_id=signal.id,
        expected_status=SignalStatus.ACTIVE,
        new_status=SignalStatus.ACTIVE,
        reason=reason,
        fields={
            "filled_qty": format(qty.normalize(), "f"),
            "symbol": symbol,
            "followed_activities": followed,
        },
        expected_version=signal.version,
    )
