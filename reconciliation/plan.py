"""The repair plan: what to do about each finding, decided from plain data (pure: no I/O).

Input: the diff's findings, what the targeted look-ups confirmed, the broker's orders by
client_order_id. Output: one :class:`PlannedRepair` per finding, in order. A terminal repair
(closing a signal, marking an order missing) is planned only when its look-up confirmed it; a
finding whose look-up did not happen (budget spent) is left to the next run.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from .diff import Finding, ReconciliationErrors


class Repair(StrEnum):
    """Repairs a finding can call for; each has one handler (:mod:`reconciliation.repairs`)."""

    CLOSE_SIGNAL = "close_signal"  # ORPHAN_POSITION: the ACTIVE signal -> CLOSED_MANUAL
    MARK_ORDER_MISSING = "mark_order_missing"  # ORDER_NOT_FOUND, confirmed by a 404
    APPLY_BROKER_ORDER = "apply_broker_order"  # ORDER_STATUS_DRIFT: ours takes Alpaca's state
    ADOPT_ORDER = "adopt_order"  # UNKNOWN_ORDER: recorded into the audit trail


class Verdict(StrEnum):
    REPAIR = "repair"  # apply ``repair`` (or report it, on a dry run)
    FLAG = "flag"  # report only: this kind never repairs
    SKIP = "skip"  # a repair would be due but is not made now (``detail`` says why)


@dataclass(frozen=True)
class PlannedRepair:
    finding: Finding
    verdict: Verdict
    repair: Repair | None = None
    detail: str = ""
    order: Any = field(default=None, compare=False)  # the broker's order, for order repairs


OVER_BUDGET = "confirmation budget spent: next run"
BULK_LAGGED = "targeted look-up found the position: bulk read lagged"
EXPLAINED_IN_PART = "the account's activities moved this holding: left to an operator"


def repair_plan(
    findings: Sequence[Finding],
    *,
    position_absent: Mapping[str, bool],
    orders_looked_up: Mapping[str, Any],
    orders_by_client_id: Mapping[str, Any],
) -> list[PlannedRepair]:
    """One planned repair per finding (see the module docstring).

    ``position_absent``: symbol_key -> the look-up answered 404 (absent key: not looked up);
    ``orders_looked_up``: client_order_id -> the order found, or None for a 404 (absent key: not
    looked up).
    """
    return [
        _PLANNERS.get(f.kind, _flag)(f, position_absent, orders_looked_up, orders_by_client_id)
        for f in findings
    ]


def _flag(finding: Finding, *_: Any) -> PlannedRepair:
    return PlannedRepair(finding, Verdict.FLAG)


def _orphan(finding: Finding, position_absent: Mapping[str, bool], *_: Any) -> PlannedRepair:
    if finding.explained:  # an activity moved this holding: never closed on a guess
        return PlannedRepair(finding, Verdict.SKIP, detail=EXPLAINED_IN_PART)
    absent = position_absent.get(finding.symbol)
    if absent is None:
        return PlannedRepair(finding, Verdict.SKIP, detail=OVER_BUDGET)
    if not absent:
        return PlannedRepair(finding, Verdict.SKIP, detail=BULK_LAGGED)
    return PlannedRepair(finding, Verdict.REPAIR, Repair.CLOSE_SIGNAL)


def _order_not_found(
    finding: Finding, _: Mapping, orders_looked_up: Mapping[str, Any], __: Mapping
) -> PlannedRepair:
    if finding.client_order_id not in orders_looked_up:
        return PlannedRepair(finding, Verdict.SKIP, detail=OVER_BUDGET)
    order = orders_looked_up[finding.client_order_id]
    if order is None:
        return PlannedRepair(finding, Verdict.REPAIR, Repair.MARK_ORDER_MISSING)
    # It exists after all: whatever its state, ours takes it.
    found = replace(
        finding,
        kind=ReconciliationErrors.ORDER_STATUS_DRIFT,
        broker_status=order.status,
        alpaca_order_id=order.id,
        detail="absent from the list, found by look-up",
    )
    return PlannedRepair(found, Verdict.REPAIR, Repair.APPLY_BROKER_ORDER, order=order)


def _drift(finding: Finding, _: Mapping, __: Mapping, orders: Mapping[str, Any]) -> PlannedRepair:
    order = orders[finding.client_order_id]
    return PlannedRepair(finding, Verdict.REPAIR, Repair.APPLY_BROKER_ORDER, order=order)


def _unknown_order(
    finding: Finding, _: Mapping, __: Mapping, orders: Mapping[str, Any]
) -> PlannedRepair:
    order = orders[finding.client_order_id]
    return PlannedRepair(finding, Verdict.REPAIR, Repair.ADOPT_ORDER, order=order)


_PLANNERS = {
    ReconciliationErrors.ORPHAN_POSITION: _orphan,
    ReconciliationErrors.ORDER_NOT_FOUND: _order_not_found,
    ReconciliationErrors.ORDER_STATUS_DRIFT: _drift,
    ReconciliationErrors.UNKNOWN_ORDER: _unknown_order,
}
