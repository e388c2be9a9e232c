"""The order path per account (docs/design.md section 16): each account's cycle reads its own
PENDING signals, claims them with its own prefix and sends them to its own broker; an unknown
account's signal is rejected once; one account's broker down or keys refused never fails or
delays another's cycle; the sync and a re-sync ask each attempt's own broker."""

import json
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from brokerops.alpaca import BrokerRejected, BrokerUnavailable
from brokerops.intent.local import LocalSignalStore
from brokerops.intent.schema import SignalStatus
from brokerops.locks import single_flight
from orders.models import OrderAttempt, OrderEvent
from orders.services import order_attempts_sync, orders_submit_pending
from orders.services.resync import ResyncResult, order_attempts_resync
from orders.tasks import order_attempts_sync_task, orders_submit_pending_task
from tests.accounts.conftest import pending
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def resting(**fields):
    """A limit buy far below the price: it rests open at the broker."""
    return pending(order_type="limit", limit_price="1.00", **fields)


def resting_at_each_broker(two_accounts, store) -> tuple[OrderAttempt, OrderAttempt]:
    """The attempts of one order resting at each account's broker: the desk's, the client's."""
    store.put_documents([("d1", resting(account="desk")), ("c1", resting(account="client"))])
    for name in two_accounts.names:
        orders_submit_pending(account=name, store=store)
    return (
        OrderAttempt.objects.get(client_order_id="dk-d1-entry"),
        OrderAttempt.objects.get(client_order_id="cl-c1-entry"),
    )


def test_each_accounts_orders_reach_only_its_own_broker_with_its_own_prefix(two_accounts, store):
    store.put_documents(
        [
            ("d1", pending(account="desk")),
            ("d2", pending()),  # names no account: the default account's (desk)
            ("c1", pending(account="client")),
            ("c2", pending("MSFT", account="client")),
        ]
    )
    desk = orders_submit_pending(account="desk", store=store)
    assert {o.signal_id: str(o.outcome) for o in desk.outcomes} == {
        "d1": "submitted",
        "d2": "submitted",
    }
    counts = orders_submit_pending_task(account="client")  # the task the fan-out enqueues
    assert counts["submitted"] == 2 and counts["account"] == "client"

    assert two_accounts.coids_at("desk") == {"dk-d1-entry", "dk-d2-entry"}
    assert two_accounts.coids_at("client") == {"cl-c1-entry", "cl-c2-entry"}
    assert dict(OrderAttempt.objects.values_list("client_order_id", "account")) == {
        "dk-d1-entry": "desk",
        "dk-d2-entry": "desk",
        "cl-c1-entry": "client",
        "cl-c2-entry": "client",
    }
    for signal_id in ("d1", "d2", "c1", "c2"):
        assert store.get(signal_id).status is not SignalStatus.PENDING
    # A second round sends nothing anywhere: each account's cycle sees no PENDING signal.
    assert orders_submit_pending(account="desk", store=store).outcomes == []
    assert orders_submit_pending(account="client", store=store).outcomes == []
    assert len(two_accounts.broker("desk").orders()) == 2
    assert len(two_accounts.broker("client").orders()) == 2


def test_an_unknown_accounts_pending_signal_is_rejected_once_and_sent_nowhere(two_accounts, store):
    store.put_documents([("g1", pending(account="ghost")), ("d1", pending())])
    outcomes = []
    for _ in range(2):
        for name in two_accounts.names:
            outcomes += [
                (name, o.signal_id, str(o.outcome))
                for o in orders_submit_pending(account=name, store=store).outcomes
            ]
    # Rejected by the default account's cycle only, the first time; never sent.
    assert outcomes == [("desk", "g1", "rejected"), ("desk", "d1", "submitted")]
    signal = store.get("g1")
    assert signal.status is SignalStatus.REJECTED
    assert "account 'ghost' is not configured (accounts: desk, client)" in signal.status_reason
    attempt = OrderAttempt.objects.get(signal_id="g1")
    assert (attempt.account, attempt.client_order_id, attempt.status) == (
        "desk",
        "dk-g1-entry",
        OrderAttempt.Status.REJECTED,
    )
    assert not attempt.events.filter(kind=OrderEvent.Kind.REQUEST_SENT).exists()
    assert "dk-g1-entry" not in two_accounts.coids_at("desk")
    assert two_accounts.coids_at("client") == set()


class MovesToAnotherAccount(LocalSignalStore):
    """The writer moves signal ``signal_id`` to account ``to`` just before the cycle's re-read
    (after the cycle read it as another account's and claimed it)."""

    def __init__(self, signal_id: str, to: str) -> None:
        super().__init__()
        self.signal_id, self.to = signal_id, to

    def get_many(self, signal_ids):
        if self.signal_id in signal_ids and self.to is not None:
            self.put_documents([(self.signal_id, pending(account=self.to))])
            self.to = None
        return super().get_many(signal_ids)


def test_a_signal_moved_to_another_account_before_its_send_is_sent_by_neither(two_accounts):
    store = MovesToAnotherAccount("m1", to="client")
    store.put_documents([("m1", pending(account="desk"))])
    [outcome] = orders_submit_pending(account="desk", store=store).outcomes
    assert str(outcome.outcome) == "withdrawn"
    assert "account 'client'" in outcome.reason
    assert two_accounts.coids_at("desk") == set()
    # The signal id's one attempt is desk's: the client account never sends it either, and the
    # finding is recorded on that attempt.
    [outcome] = orders_submit_pending(account="client", store=store).outcomes
    assert str(outcome.outcome) == "conflict"
    assert two_accounts.coids_at("client") == set()
    signal = store.get("m1")
    assert signal.status is SignalStatus.REJECTED
    assert "belongs to account 'desk'" in signal.status_reason
    attempt = OrderAttempt.objects.get(signal_id="m1")
    assert attempt.account == "desk"
    assert attempt.events.filter(kind=OrderEvent.Kind.SIGNAL_TRANSITION).exists()
    assert orders_submit_pending(account="client", store=store).outcomes == []


def test_a_stalled_brokers_cycle_never_delays_the_other_accounts_cycle(two_accounts, store):
    store.put_documents([("c1", pending(account="client")), ("d1", pending(account="desk"))])
    client_broker = two_accounts.broker("client")
    client_broker.inject_next("GET /v2/positions", "stall", stall_s=60)
    errors = []

    def client_cycle():
        try:
            orders_submit_pending(account="client", store=store)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    stuck = threading.Thread(target=client_cycle, daemon=True)
    stuck.start()
    wait_for(
        lambda: client_broker.counters().get(("GET", "/v2/positions")),
        what="the client account's cycle to wait on its broker",
    )
    desk = orders_submit_pending(account="desk", store=store)
    assert [str(o.outcome) for o in desk.outcomes] == ["submitted"]
    assert two_accounts.coids_at("desk") == {"dk-d1-entry"}
    assert stuck.is_alive()  # the desk's cycle finished while the client's still waits
    client_broker.stop()  # the stalled answer never comes: the client's cycle fails alone
    stuck.join(timeout=60)
    assert not stuck.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], BrokerUnavailable)
    assert store.get("c1").status is SignalStatus.PENDING


def test_refused_keys_fail_only_their_accounts_cycle(two_accounts, store):
    store.put_documents([("c1", pending(account="client")), ("d1", pending(account="desk"))])
    two_accounts.set_secret("client", "wrong")
    with pytest.raises(BrokerRejected) as refused:
        orders_submit_pending(account="client", store=store)
    assert refused.value.is_auth_error
    desk = orders_submit_pending(account="desk", store=store)
    assert [str(o.outcome) for o in desk.outcomes] == ["submitted"]
    assert two_accounts.coids_at("desk") == {"dk-d1-entry"}
    assert store.get("c1").status is SignalStatus.PENDING


def test_an_accounts_cycles_and_syncs_never_overlap_and_never_hold_up_another_account(
    two_accounts, store
):
    store.put_documents([("c1", pending(account="client")), ("d1", pending())])
    with single_flight("orders-submit:client") as held, single_flight("orders-sync:client"):
        assert held  # a cycle and a sync of the client account are running
        client = orders_submit_pending(account="client", store=store)
        assert client.skipped == "another order cycle of account 'client' holds the lock"
        assert client.outcomes == [] and two_accounts.coids_at("client") == set()
        assert order_attempts_sync_task(account="client")["skipped"] == (
            "another order sync of account 'client' holds the lock"
        )
        desk = orders_submit_pending(account="desk", store=store)
        assert [str(o.outcome) for o in desk.outcomes] == ["submitted"]
        assert "skipped" not in order_attempts_sync_task(account="desk")
    assert [
        str(o.outcome) for o in orders_submit_pending(account="client", store=store).outcomes
    ] == ["submitted"]


def test_the_sync_asks_each_attempts_own_broker(two_accounts, store):
    desk_attempt, client_attempt = resting_at_each_broker(two_accounts, store)
    two_accounts.broker("desk").cancel_order_manually("dk-d1-entry")

    desk = order_attempts_sync(account="desk", store=store)
    assert desk.attempts_seen == 1  # the client's attempt is not the desk's to look up
    desk_attempt.refresh_from_db()
    client_attempt.refresh_from_db()
    assert desk_attempt.status == OrderAttempt.Status.CANCELED
    assert client_attempt.status == OrderAttempt.Status.OPEN  # never looked up at the desk
    counts = order_attempts_sync_task(account="client")
    assert (counts["account"], counts["attempts_seen"]) == ("client", 1)
    client_attempt.refresh_from_db()
    assert client_attempt.status == OrderAttempt.Status.OPEN


def test_a_resync_asks_each_attempts_own_broker(two_accounts, store):
    desk_attempt, client_attempt = resting_at_each_broker(two_accounts, store)
    two_accounts.broker("client").cancel_order_manually("cl-c1-entry")
    outcomes = order_attempts_resync(
        attempt_ids=[desk_attempt.pk, client_attempt.pk], actor="ops", store=store
    )
    by_id = {o.attempt_id: o for o in outcomes}
    assert by_id[desk_attempt.pk].result is ResyncResult.UNCHANGED
    assert by_id[client_attempt.pk].result is ResyncResult.STATUS_CHANGED
    assert by_id[client_attempt.pk].status_to == OrderAttempt.Status.CANCELED


def run(command, *args):
    out, err = _Output(), _Output()
    call_command(command, *args, stdout=out, stderr=err)
    return out.text


class _Output:
    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text + ("\n" if not text.endswith("\n") else "")

    def flush(self):
        pass


def test_submit_and_sync_orders_serve_one_account_or_all(two_accounts, settings):
    settings.SIGNAL_STORE = "local"
    store = LocalSignalStore()
    store.put_documents([("d1", resting()), ("c1", resting(account="client"))])
    single = json.loads(run("submit_orders", "--account", "client", "--json"))
    assert single["account"] == "client"
    assert [s["client_order_id"] for s in single["signals"]] == ["cl-c1-entry"]

    every = json.loads(run("submit_orders", "--all", "--json"))
    assert [(o["account"], o["signals"][0]["client_order_id"] if o["signals"] else None)
            for o in every] == [("desk", "dk-d1-entry"), ("client", None)]  # fmt: skip
    synced = json.loads(run("sync_orders", "--all", "--json"))
    assert [(o["account"], o["attempts_seen"]) for o in synced] == [("desk", 1), ("client", 1)]
    default = json.loads(run("sync_orders", "--json"))  # neither: the default account
    assert default["account"] == "desk"
    text = run("sync_orders", "--all")
    assert "account desk:" in text and "account client:" in text

    with pytest.raises(CommandError) as unknown:
        run("submit_orders", "--account", "ghost")
    assert unknown.value.returncode == 2
    assert "no account 'ghost' (accounts: desk, client)" in str(unknown.value)


def test_all_accounts_one_refused_reports_it_and_serves_the_others(two_accounts, settings):
    settings.SIGNAL_STORE = "local"
    store = LocalSignalStore()
    store.put_documents([("d1", pending()), ("c1", pending(account="client"))])
    two_accounts.set_secret("client", "wrong")
    out, err = _Output(), _Output()
    with pytest.raises(CommandError) as failed:
        call_command("submit_orders", "--all", "--json", stdout=out, stderr=err)
    assert failed.value.returncode == 1
    assert "account client:" in str(failed.value) and "desk" not in str(failed.value)
    desk, client = json.loads(out.text)
    assert (desk["account"], desk["submitted"], desk.get("error")) == ("desk", 1, None)
    assert client["account"] == "client" and "API keys" in client["error"]
    assert two_accounts.coids_at("desk") == {"dk-d1-entry"}
    assert store.get("c1").status is SignalStatus.PENDING
