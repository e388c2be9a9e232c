"""What an order cycle reports: one outcome per signal, and the cycle's counts."""

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum


class Outcome(StrEnum):
    SUBMITTED = "submitted"  # accepted by Alpaca now
    ADOPTED = "adopted"  # an earlier send had landed: that order is ours
    REJECTED = "rejected"  # by validation or by Alpaca; the signal is REJECTED
    UNKNOWN = "unknown"  # outcome unknown: resolved by client_order_id next cycle
    DEFERRED = "deferred"  # not sent now (rate limited, broker unavailable before sending)
    WITHDRAWN = "withdrawn"  # deleted or moved out of PENDING by its writer: not sent, or undone
    CONFLICT = "conflict"  # the document asks for another order than its id's: REJECTED
    BUSY = "busy"  # another worker holds this signal's attempt
    ALREADY = "already"  # the attempt had reached the broker before this cycle
    FAILED = "failed"  # an error on this signal (recorded on it); the cycle went on


@dataclass
class SignalOutcome:
    signal_id: str
    client_order_id: str
    outcome: Outcome
    reason: str = ""
    alpaca_order_id: str = ""
    halts_cycle: bool = False  # rate limited: the rest of the cycle waits for the next one

    def as_dict(self) -> dict[str, str]:
        return {
            "signal_id": self.signal_id,
            "client_order_id": self.client_order_id,
            "outcome": str(self.outcome),
            "reason": self.reason,
            "alpaca_order_id": self.alpaca_order_id,
        }


@dataclass
class SubmitResult:
    outcomes: list[SignalOutcome] = field(default_factory=list)
    invalid_signals: int = 0
    api_calls: int = 0
    account: str = ""  # the account the cycle was for (docs/design.md section 16)
    skipped: str = ""  # why the cycle did nothing (another cycle of the account held its lock)

    def counts(self) -> dict[str, int]:
        counts = Counter(o.outcome for o in self.outcomes)
        return {
            "signals": len(self.outcomes),
            "invalid_signals": self.invalid_signals,
            "api_calls": self.api_calls,
            **dict(sorted(counts.items())),
        }

    def report(self) -> dict[str, object]:
        """The account and the counts (and why it was skipped, when it was): what the task
        returns and the commands print."""
        skipped = {"skipped": self.skipped} if self.skipped else {}
        return {"account": self.account, **self.counts(), **skipped}
