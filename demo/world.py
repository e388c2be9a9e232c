"""The demo's world: a paper broker and signals that show every mismatch kind and the order flow.

Used by ``manage.py demo``. The broker's side is :func:`brokerops.sim.scenarios.scenario_demo`,
the same function ``python -m brokerops.sim --scenario demo`` serves, so the two brokers hold the
same positions and orders. This module adds the demo's own side: the signals (holdings that
agree, one case of each ``ReconciliationErrors`` kind, PENDING signals for the order cycle: one
fills at once, one rests until the price ticker crosses it, two are rejected before anything is
sent) and two order attempts an earlier day left.

A second account, a client's (docs/design.md section 16), is served by the same paper broker
under keys of its own: :func:`seed_client_account` gives it a book of its own and
:func:`client_signals` are its signals, each naming the account ``client`` (the desk's, above,
name none: they belong to the default account; :mod:`demo.accounts` configures both).
"""

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from brokerops.accounts import rows_owner_name
from brokerops.intent.store import SignalStore
from brokerops.sim import AccountHandle, PaperBroker
from brokerops.sim.scenarios import DEMO_DRIFT_CLIENT_ORDER_ID, scenario_demo
from ledger.services import activities_sync
from orders.models import OrderAttempt
from reconciliation.breaks import break_acknowledge, break_approve, break_propose
from reconciliation.models import Break, Mismatch, ReconciliationRun
from reconciliation.services import reconciliation_run

#: An order we recorded as open that the demo's broker never had (ORDER_NOT_FOUND).
DEMO_GONE_CLIENT_ORDER_ID = "bo-demo-gone-entry"

#: The signals an ORPHAN_POSITION repair closes (CLOSED_MANUAL) on the demo's broker: no other.
DEMO_ORPHANS = frozenset({"demo-eth"})


def _DAY_BEFORE():
    return timezone.now() - timedelta(days=1)


def _signal(symbol: str, qty: str, status: str, side: str = "buy", **extra) -> dict:
    return {
        "symbol": symbol,
        "side": side,
        "qty": qty,
        "order_type": "market",
        "status": status,
        **extra,
    }


def demo_signals() -> list[tuple[str, dict]]:
    """The demo's signal documents (id, document), as ``seed_demo`` loads them."""
    return [
        # agrees with the broker's AAPL 10; filled before the demo's 4:1 split (demo_split)
        ("demo-aapl", _signal("AAPL", "10", "ACTIVE", created_at=_DAY_BEFORE())),
        ("demo-btc", _signal("BTC/USD", "0.5", "ACTIVE")),  # agrees (BTC/USD = BTCUSD)
        ("demo-eth", _signal("ETH/USD", "2", "ACTIVE")),  # ORPHAN_POSITION: closed by hand
        ("demo-tsla", _signal("TSLA", "10", "ACTIVE")),  # QTY_MISMATCH: the broker holds 7
        ("demo-spy", _signal("SPY", "5", "ACTIVE")),  # SIDE_MISMATCH: the broker is short 5
        ("demo-broken", _signal("AAPL", "lots", "ACTIVE")),  # INVALID_SIGNAL
        # The order flow:
        ("demo-buy-aapl", _signal("AAPL", "5", "PENDING")),  # market: fills at once
        (
            "demo-limit-noshrt",
            {**_signal("NOSHRT", "10", "PENDING"), "order_type": "limit", "limit_price": "19"},
        ),  # rests until the ticker drops NOSHRT
        ("demo-halted", _signal("HALTD", "1", "PENDING")),  # rejected: not tradable
        (
            "demo-subpenny",
            {
                **_signal("PENNY", "100", "PENDING"),
                "order_type": "limit",
                "limit_price": "0.12345",
            },
        ),  # rejected: sub-penny price
    ]


#: The client account: its name (as an ``ACCOUNTS_FILE`` would name it and its signals do) and the
#: keys the demo's paper broker serves its book under (demo-only, like the broker's test-key).
DEMO_CLIENT_ACCOUNT = "client"
DEMO_CLIENT_KEYS = ("demo-client-key", "demo-client-secret")


def client_signals() -> list[tuple[str, dict]]:
    """The client account's signal documents (id, document): one holding that agrees with the
    client's book, one it disagrees with, and a PENDING one for the order cycle. The ids are
    unique beside the desk's (one store holds both accounts' signals)."""
    account = {"account": DEMO_CLIENT_ACCOUNT}
    return [
        ("client-msft", _signal("MSFT", "20", "ACTIVE", **account)),  # agrees with MSFT 20
        ("client-aapl", _signal("AAPL", "8", "ACTIVE", **account)),  # QTY_MISMATCH: holds 5
        ("client-buy-tsla", _signal("TSLA", "2", "PENDING", **account)),  # market: fills at once
    ]


def seed_client_account(broker: PaperBroker, *, store: SignalStore | None = None) -> AccountHandle:
    """Serve the client account on ``broker`` under :data:`DEMO_CLIENT_KEYS` (the market is the
    desk's: the demo scenario's assets and prices) and seed its book: MSFT 20 and AAPL 5, which
    its signals expect, and SPY 2, which no signal names (UNTRACKED_POSITION in the client's
    account only). With ``store``, its signals are added beside the desk's. Returns the
    account's handle."""
    client = broker.add_account(*DEMO_CLIENT_KEYS, name=DEMO_CLIENT_ACCOUNT)
    client.seed_position("MSFT", Decimal(20), Decimal("410"))
    client.seed_position("AAPL", Decimal(5), Decimal("185"))
    client.seed_position("SPY", Decimal(2), Decimal("510"))
    if store is not None:
        store.put_documents(client_signals())
    return client


def seed_demo_records(
    *, store: SignalStore, drift_order_id: str, account: str | None = None
) -> None:
    """The demo's side: its signals and two open attempts an earlier day left (one whose order
    the broker never had, one whose order was canceled there by hand: ``drift_order_id``), of
    ``account`` (None: the account of rows that name none, the default account)."""
    store.delete_all()
    store.put_documents(demo_signals())
    hour_ago = timezone.now() - timedelta(hours=1)
    account = account or rows_owner_name()
    # ORDER_NOT_FOUND: we recorded an open order that Alpaca does not have.
    _open_attempt(
        DEMO_GONE_CLIENT_ORDER_ID, "demo-gone", "AAPL", account=account, created_at=hour_ago
    )
    # ORDER_STATUS_DRIFT: somebody canceled our order at the broker.
    _open_attempt(
        DEMO_DRIFT_CLIENT_ORDER_ID,
        "demo-drift",
        "MSFT",
        account=account,
        created_at=hour_ago,
        alpaca_order_id=drift_order_id,
    )


def _open_attempt(client_order_id: str, signal_id: str, symbol: str, **fields) -> None:
    """An attempt an earlier day left open: a market buy of 1, ``new`` at the broker."""
    OrderAttempt.objects.create(
        client_order_id=client_order_id,
        signal_id=signal_id,
        symbol=symbol,
        side="buy",
        order_type="market",
        qty=1,
        status=OrderAttempt.Status.OPEN,
        broker_status="new",
        **fields,
    )


def seed_demo(*, broker: PaperBroker, store: SignalStore, account: str | None = None) -> None:
    """Seed the broker (the ``demo`` scenario), the signal store and two order attempts (of
    ``account``, as :func:`seed_demo_records`)."""
    scenario_demo(broker)
    drift = broker.order(DEMO_DRIFT_CLIENT_ORDER_ID)
    if drift is None:  # the scenario and this module disagree: a bug, not a state to run on
        raise RuntimeError(f"the demo scenario has no order {DEMO_DRIFT_CLIENT_ORDER_ID}")
    seed_demo_records(store=store, drift_order_id=str(drift["id"]), account=account)


def tick_prices(broker: PaperBroker, step: int) -> None:
    """The demo's market: NOSHRT drifts down until it crosses the resting limit order."""
    price = max(Decimal("18.5"), Decimal("20") - Decimal("0.25") * step)
    broker.set_price("NOSHRT", price)


def demo_four_eyes(*, account: str, proposer, approver) -> Break | None:
    """Four eyes on one of ``account``'s breaks, through the services as people would: the
    side mismatch (SPY: the broker is short) is taken and explained by ``proposer``, then
    approved by ``approver``. None when the account has no such open break."""
    brk = Break.objects.filter(
        account=account, kind=Mismatch.Kind.SIDE_MISMATCH, state=Break.State.OPEN
    ).first()
    if brk is None:
        return None
    break_acknowledge(break_id=brk.pk, user=proposer, comment="Looking at the SPY short.")
    break_propose(
        break_id=brk.pk,
        user=proposer,
        disposition=Break.Disposition.EXPLAINED,
        reason="The desk sold short by hand to hedge; the signal will be amended.",
    )
    return break_approve(break_id=brk.pk, user=approver, comment="Hedge confirmed with the desk.")


#: The holding the demo splits 4:1 (docs/design.md section 18.4), and the signal that follows.
DEMO_SPLIT_SYMBOL, DEMO_SPLIT_SIGNAL = "AAPL", "demo-aapl"


def demo_split(*, broker: PaperBroker, account: str) -> ReconciliationRun:
    """A 4:1 split of AAPL through the paper broker's handle (in every account, as Alpaca's
    beginning-of-day process), the account's activities read, and a run of ``account`` that
    follows it: ``demo-aapl`` then expects 40, and no break is raised. Returns the run."""
    broker.corporate_action("split", symbol=DEMO_SPLIT_SYMBOL, new_rate=4)
    activities_sync(account=account)
    return reconciliation_run(trigger=ReconciliationRun.Trigger.COMMAND, account=account)
