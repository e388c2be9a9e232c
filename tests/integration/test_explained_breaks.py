"""Explained breaks (docs/design.md section 18.4) end to end: corporate actions and coin fees
applied by the paper broker over loopback, read through the real alpaca-py client into the
ledger, and a reconciliation run that follows what they fully explain."""

from datetime import timedelta
from decimal import Decimal as D

import pytest
from alpaca.trading.client import TradingClient
from django.utils import timezone

from brokerops.alpaca.parsing import parse_activities
from brokerops.intent.schema import Signal
from brokerops.sim import PaperBroker
from ledger.services import activities_record, activities_sync
from orders.models import OrderEvent
from reconciliation.models import Break, BreakEvent, Mismatch
from reconciliation.services import reconciliation_run
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broker():
    with PaperBroker(default_assets=True, fill_delay_s=0, rate_limit_per_min=None) as running:
        yield running


def active(symbol, qty, side="buy", **extra):
    return {
        "symbol": symbol,
        "side": side,
        "qty": str(qty),
        "order_type": "market",
        "status": "ACTIVE",
        "created_at": timezone.now() - timedelta(days=3),
        **extra,
    }


def run(gateway, store, *, sync=True):
    if sync:
        activities_sync(gateway=gateway)
    done = reconciliation_run(trigger="command", gateway=gateway, store=store)
    assert done.status == "succeeded", done.error
    return done


def kinds(done, symbol=None):
    rows = Mismatch.objects.filter(run=done)
    if symbol:
        rows = rows.filter(symbol=symbol)
    return sorted(rows.values_list("kind", flat=True))


def signal(store, signal_id) -> Signal:
    found = store.get(signal_id)
    assert isinstance(found, Signal), found
    return found


def test_a_4_for_1_split_is_explained_and_its_open_break_closes(broker, gateway, store):
    broker.seed_position("AAPL", 10, "200")
    store.put_documents([("s-aapl", active("AAPL", 10, client_order_id="bo-s-aapl-entry"))])
    attempt = factories.order_attempt(
        client_order_id="bo-s-aapl-entry", signal_id="s-aapl", symbol="AAPL", status="filled"
    )
    broker.corporate_action("split", symbol="AAPL", new_rate=4)
    before = run(gateway, store, sync=False)  # the activities not read yet: a break opens
    assert kinds(before) == ["QTY_MISMATCH"]
    brk = Break.objects.get(kind="QTY_MISMATCH", symbol="AAPL")
    assert brk.state == "open"

    after = run(gateway, store)
    assert kinds(after) == []
    moved = signal(store, "s-aapl")
    assert moved.signed_qty == D(40) and moved.symbol == "AAPL"
    remove, add = (a["id"] for a in broker.activities())
    assert moved.followed_activities == (remove, add)
    assert remove in moved.status_reason and "4:1" in moved.status_reason
    brk.refresh_from_db()
    assert (brk.state, brk.disposition, brk.cleared_by_run_id) == ("closed", "explained", after.pk)
    event = BreakEvent.objects.get(break_case=brk, kind="explained")
    assert remove in event.message and event.payload["activities"] == [remove, add]
    trail = OrderEvent.objects.get(attempt=attempt, kind="signal_transition")
    assert add in trail.message and "APPLIED" in trail.message
    assert after.summary["explained"]["followed"]

    again = run(gateway, store)  # idempotent: the split is followed once
    assert kinds(again) == [] and again.summary["explained"]["partly"] == {}
    assert signal(store, "s-aapl").signed_qty == D(40)
    assert OrderEvent.objects.filter(attempt=attempt, kind="signal_transition").count() == 1


def test_a_reverse_split(broker, gateway, store):
    broker.seed_position("TSLA", 10)
    store.put_documents([("s-tsla", active("TSLA", 10))])
    broker.corporate_action("split", symbol="TSLA", new_rate=1, old_rate=4)
    done = run(gateway, store)
    assert kinds(done) == []
    assert signal(store, "s-tsla").signed_qty == D("2.5")
    assert "1:4" in signal(store, "s-tsla").status_reason


def test_a_name_change_moves_the_signal_to_the_new_symbol(broker, gateway, store):
    broker.seed_position("MSFT", 3)
    store.put_documents([("s-msft", active("MSFT", 3))])
    broker.corporate_action("name_change", symbol="MSFT", new_symbol="MSFX")
    done = run(gateway, store)
    assert kinds(done) == []
    moved = signal(store, "s-msft")
    assert (moved.symbol, moved.signed_qty) == ("MSFX", D(3))


def test_a_merger_with_a_ratio(broker, gateway, store):
    broker.seed_position("AAPL", 10)
    store.put_documents([("s-aapl", active("AAPL", 10))])
    run(gateway, store)  # nothing to explain yet
    broker.corporate_action("merger", symbol="AAPL", new_symbol="NEWCO", rate="0.5", cash_rate=2)
    done = run(gateway, store)
    assert kinds(done) == []
    moved = signal(store, "s-aapl")
    assert (moved.symbol, moved.signed_qty, moved.status) == ("NEWCO", D(5), "ACTIVE")
    assert "MA AAPL -> NEWCO 1:2" in moved.status_reason


def test_a_merger_half_posted_never_closes_the_signal(broker, gateway, store):
    broker.seed_position("AAPL", 10)
    store.put_documents([("s-aapl", active("AAPL", 10))])
    broker.corporate_action("merger", symbol="AAPL", new_symbol="NEWCO", rate="0.5")
    _, add = broker.activities()
    broker.hold_activity(add["id"])  # the ADD leg not posted yet: the run reads the REMOVE only
    done = run(gateway, store)
    assert kinds(done) == ["ORPHAN_POSITION", "UNTRACKED_POSITION"]
    orphan = Mismatch.objects.get(run=done, kind="ORPHAN_POSITION")
    assert orphan.action == "repair_skipped" and "only its REMOVE side" in orphan.detail
    assert signal(store, "s-aapl").status == "ACTIVE"


def test_a_spin_off_holding_is_explained(broker, gateway, store):
    broker.seed_position("AAPL", 10)
    store.put_documents([("s-aapl", active("AAPL", 10))])
    broker.corporate_action("spin_off", symbol="AAPL", new_symbol="SPUN", rate="0.1", price=5)
    assert kinds(run(gateway, store, sync=False)) == ["UNTRACKED_POSITION"]
    done = run(gateway, store)
    assert kinds(done) == []
    assert signal(store, "s-aapl").signed_qty == D(10)
    assert Break.objects.get(symbol="SPUN").disposition == "explained"
    broker.seed_position("SPUN", "0.5")  # half of it sold since: a break, its part shown
    (row,) = Mismatch.objects.filter(run=run(gateway, store))
    assert row.kind == "UNTRACKED_POSITION" and "spin-off adds 1 (" in row.detail


def buy(broker, symbol, qty):
    client = TradingClient(
        "test-key", "test-secret", paper=True, url_override=broker.base_url, raw_data=True
    )
    body = {"symbol": symbol, "qty": str(qty), "side": "buy", "type": "market"}
    return client.post("/orders", {**body, "time_in_force": "gtc"})


def test_a_posted_coin_fee_replaces_the_tolerance(broker, gateway, store, settings):
    settings.CRYPTO_FEE_TOLERANCE_BPS = D(40)
    btc, eth = buy(broker, "BTC/USD", "0.01"), buy(broker, "ETH/USD", "0.1")
    store.put_documents(
        [
            ("s-btc", active("BTC/USD", "0.01", alpaca_order_id=btc["id"])),
            ("s-eth", active("ETH/USD", "0.1", alpaca_order_id=eth["id"])),
        ]
    )
    assert kinds(run(gateway, store)) == []  # fees not posted: the tolerance covers both
    (btc_fee, _) = broker.post_crypto_fees()
    done = run(gateway, store)
    assert kinds(done) == []
    held = D(broker.position("BTCUSD")["qty"])
    assert signal(store, "s-btc").signed_qty == held == D("0.01") + D(btc_fee["qty"])
    assert signal(store, "s-btc").followed_activities == (btc_fee["id"],)
    # A shortfall beside the posted fee is no longer taken for a fee: the tolerance is gone.
    broker.seed_position("BTC/USD", held - D("0.000001"))
    assert kinds(run(gateway, store)) == ["QTY_MISMATCH"]


def test_a_fee_not_posted_keeps_the_tolerance(broker, gateway, store, settings):
    settings.CRYPTO_FEE_TOLERANCE_BPS = D(40)
    eth = buy(broker, "ETH/USD", "0.1")
    store.put_documents([("s-eth", active("ETH/USD", "0.1", alpaca_order_id=eth["id"]))])
    assert kinds(run(gateway, store)) == []
    assert signal(store, "s-eth").followed_activities == ()


# Bad input: recorded, never fails the run, never moves a signal on a guess.


def notes(done) -> str:
    return "\n".join(done.summary["explained"]["not_followed"])


def test_a_split_with_one_side_posted_is_recorded_and_moves_nothing(broker, gateway, store):
    broker.seed_position("AAPL", 10)
    store.put_documents([("s-aapl", active("AAPL", 10))])
    broker.corporate_action("split", symbol="AAPL", new_rate=4)
    _, add = broker.activities()
    broker.hold_activity(add["id"])  # the ADD leg not posted yet
    done = run(gateway, store)
    assert kinds(done) == ["QTY_MISMATCH"]
    assert "only its REMOVE side is posted yet" in notes(done)
    row = Mismatch.objects.get(run=done)
    assert "not followed" in row.detail
    assert signal(store, "s-aapl").signed_qty == D(10)


def test_a_split_on_a_symbol_held_long_and_short_is_not_followed(broker, gateway, store):
    broker.seed_position("AAPL", 4)
    store.put_documents([("s-long", active("AAPL", 10)), ("s-short", active("AAPL", 6, "sell"))])
    broker.corporate_action("split", symbol="AAPL", new_rate=2)
    done = run(gateway, store)
    assert kinds(done) == ["QTY_MISMATCH"]
    assert "held long and short" in notes(done)
    assert signal(store, "s-long").signed_qty == D(10)
    assert signal(store, "s-short").signed_qty == D(-6)


def test_an_activity_no_signal_knows_is_recorded(broker, gateway, store):
    broker.seed_position("MSFT", 3)
    broker.seed_position("AAPL", 1)
    store.put_documents([("s-aapl", active("AAPL", 1))])
    broker.corporate_action("split", symbol="MSFT", new_rate=2)
    done = run(gateway, store)
    assert kinds(done) == ["UNTRACKED_POSITION"]  # nothing explains a holding nobody expects
    assert "no signal knows it" in notes(done)


def test_a_quantity_finer_than_a_signal_holds_is_not_followed(broker, gateway, store):
    broker.seed_position("AAPL", 10)
    store.put_documents([("s-aapl", active("AAPL", 10))])
    today = timezone.now().date().isoformat()
    rows = [
        {"id": "20260101000000001::a", "activity_type": "SPLIT", "activity_sub_type": "FSPLIT",
         "symbol": "AAPL", "qty": "-10", "date": today, "description": "REMOVE, ..."},
        {"id": "20260101000000002::b", "activity_type": "SPLIT", "activity_sub_type": "FSPLIT",
         "symbol": "AAPL", "qty": "40.0000000001", "date": today, "description": "ADD"},
        {"id": "20260101000000003::c", "activity_type": "XYZ", "symbol": "AAPL", "qty": "1",
         "date": today},
    ]  # fmt: skip
    activities_record(account="default", activities=parse_activities(rows))
    broker.seed_position("AAPL", 40)
    done = run(gateway, store, sync=False)
    assert kinds(done) == ["QTY_MISMATCH"]
    assert "finer than 1e-9" in notes(done) and "'XYZ' is not followed" in notes(done)
    assert signal(store, "s-aapl").signed_qty == D(10)


def test_a_dry_run_shows_the_follow_and_moves_nothing(broker, gateway, store):
    broker.seed_position("AAPL", 10)
    store.put_documents([("s-aapl", active("AAPL", 10))])
    broker.corporate_action("split", symbol="AAPL", new_rate=4)
    activities_sync(gateway=gateway)
    done = reconciliation_run(trigger="command", gateway=gateway, store=store, dry_run=True)
    assert done.status == "succeeded" and kinds(done) == []
    assert "signal 's-aapl': followed SPLIT AAPL 4:1" in done.summary["explained"]["followed"][0]
    assert signal(store, "s-aapl").signed_qty == D(10)
    assert signal(store, "s-aapl").followed_activities == ()


def test_a_signal_created_after_the_split_follows_nothing(broker, gateway, store):
    broker.seed_position("AAPL", 10)
    broker.corporate_action("split", symbol="AAPL", new_rate=4)
    tomorrow = timezone.now() + timedelta(days=1)
    store.put_documents([("s-aapl", active("AAPL", 10, created_at=tomorrow))])
    done = run(gateway, store)
    assert kinds(done) == ["QTY_MISMATCH"]
    assert signal(store, "s-aapl").signed_qty == D(10)
