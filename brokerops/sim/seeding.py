"""Orders recorded without validation or HTTP (``Book.seed_order``): a test's way to set up a
broker history fast (20,000 orders in well under a second), in any status, with any times."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from .fills import QTY_STEP, ZERO
from .model import Asset, Order
from .stamps import Stamps, stamp

Moment = datetime | str | None


@dataclass(slots=True, kw_only=True)
class SeedOrder:
    """What ``Book.seed_order`` was asked for.

    ``status`` may be any string. A ``filled`` order defaults ``filled_qty`` to ``qty``,
    ``filled_avg_price`` to the current price and ``filled_at`` to ``submitted_at``; a
    ``canceled`` order defaults ``canceled_at``. Positions and cash stay as they are unless
    ``move_position`` applies the filled quantity. An open seeded order rests untouched by the
    fill model (``set_price`` never fills it) unless ``fillable``; ``Book.fill_order`` fills it
    on demand. Times default to now (strictly increasing); naive datetimes are UTC; RFC 3339
    text keeps up to nine fractional digits (nanoseconds). Orders sharing a ``submitted_at``
    can straddle a page boundary and be skipped by exclusive ``after``/``until`` paging, as at
    Alpaca.
    """

    qty: Decimal | None = None
    side: str = "buy"
    notional: Decimal | None = None
    type: str = "market"
    time_in_force: str = "day"
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    status: str = "new"
    client_order_id: str | None = None
    order_id: str | None = None
    submitted_at: Moment = None
    created_at: Moment = None
    updated_at: Moment = None
    filled_qty: Decimal | None = None
    filled_avg_price: Decimal | None = None
    filled_at: Moment = None
    canceled_at: Moment = None
    extended_hours: bool = False
    position_intent: str | None = None
    move_position: bool = False
    fillable: bool = False

    def _filled(self, asset: Asset) -> tuple[Decimal, Decimal | None]:
        """``(filled_qty, filled_avg_price)``: a ``filled`` order given neither filled all it
        asked for at the current price."""
        filled_qty = self.filled_qty
        if filled_qty is None and self.status == "filled":
            if self.qty is not None:
                filled = Decimal(self.qty)
            else:
                filled = Decimal(self.notional) / asset.price  # type: ignore[arg-type]
            filled_qty = filled.quantize(QTY_STEP, rounding=ROUND_DOWN)
        filled_dec = Decimal(filled_qty) if filled_qty is not None else ZERO
        avg = Decimal(self.filled_avg_price) if self.filled_avg_price is not None else None
        if avg is None and filled_dec:
            avg = asset.price
        return filled_dec, avg

    def build(self, asset: Asset, stamps: Stamps) -> Order:
        """The order as recorded (not yet in the order book). Times default to now."""
        submitted = stamp(self.submitted_at)
        if submitted is None:
            submitted = stamps.seeded_submission()
        created = stamp(self.created_at) or submitted
        filled_qty, avg = self._filled(asset)
        filled_at = self.filled_at
        if filled_at is None and self.status == "filled":
            filled_at = submitted  # type: ignore[assignment]
        canceled_at = self.canceled_at
        if canceled_at is None and self.status == "canceled":
            canceled_at = submitted  # type: ignore[assignment]
        intent = self.position_intent
        if intent is None:
            intent = "buy_to_open" if self.side == "buy" else "sell_to_close"
        filled_stamp, canceled_stamp = stamp(filled_at), stamp(canceled_at)
        moments = [submitted, created, filled_stamp, canceled_stamp]
        return Order(
            id=(self.order_id or str(uuid.uuid4())).lower(),
            client_order_id=self.client_order_id or str(uuid.uuid4()),
            asset=asset,
            side=self.side,
            type=self.type,
            time_in_force=self.time_in_force,
            qty=Decimal(self.qty) if self.qty is not None else None,
            notional=Decimal(self.notional) if self.notional is not None else None,
            limit_price=Decimal(self.limit_price) if self.limit_price is not None else None,
            stop_price=Decimal(self.stop_price) if self.stop_price is not None else None,
            status=self.status,
            created_at=created,
            submitted_at=submitted,
            updated_at=stamp(self.updated_at) or max(s for s in moments if s is not None),
            seq=stamps.next_seq(),
            extended_hours=self.extended_hours,
            filled_qty=filled_qty,
            filled_avg_price=avg,
            filled_at=filled_stamp,
            canceled_at=canceled_stamp,
            position_intent=intent,
            fillable=self.fillable,
        )
