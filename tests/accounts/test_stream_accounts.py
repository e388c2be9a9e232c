"""One process serves every account (docs/design.md section 16): the trade_updates consumer
keeps one connection per account and applies each fill to that account's attempts; the signal
watcher sends each signal through its own account. One account's stream failing (its broker
down, its keys refused) keeps reconnecting on its own and never stops the others."""

import signal
import threading
from collections import Counter

import pytest
from django.db import connections

from brokerops.intent.schema import SignalStatus
from orders.models import OrderAttempt, OrderExecution
from orders.services import orders_submit_pending
from orders.services.stream import Backoff, trade_updates_serve
from tests.accounts.conftest import pending
from tests.commands import database_url_of_this_test, start_command
from tests.environment import child_env
from tests.integration.test_watch_signals import Watcher
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


class Streams:
    """``trade_updates_serve`` in a thread, as the command runs it."""

    def __init__(self, store):
        self.stop = threading.Event()
        self.seen = []
        self.stats = {}  # each account's counters, filled as the consumers go
        self.error = None
        self._thread = threading.Thread(target=self._run, args=(store,), daemon=True)

    def _run(self, store):
        try:
            trade_updates_serve(
                store=store,
                stop=self.stop,
                stats=self.stats,
                backoff_for=lambda: Backoff(0.05, 0.2),
                on_event=lambda account, update, outcome: self.seen.append(
                    (account, update.order.client_order_id, update.event, outcome)
                ),
            )
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            connections.close_all()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the consumers did not stop"
        assert self.error is None, self.error


def filled_by_the_stream(coid: str) -> bool:
    """An execution of the order was recorded: only the stream records executions."""
    return OrderExecution.objects.filter(attempt__client_order_id=coid).exists()


def desk_fills_while_the_client_retries(two_accounts, store, streams) -> None:
    """The desk's order (signal d1) fills through its stream while the client's stream fails
    and is tried again, again."""
    assert two_accounts.broker("desk").wait_for_stream_listeners(1, timeout=30)
    orders_submit_pending(account="desk", store=store)
    wait_for(lambda: filled_by_the_stream("dk-d1-entry"), what="the desk's fill")
    wait_for(
        lambda: streams.stats["client"].disconnects >= 2,
        what="the client's stream to fail and be tried again",
    )


def test_one_process_streams_every_account_each_fill_to_its_own_attempts(two_accounts, store):
    store.put_documents([("d1", pending()), ("c1", pending("MSFT", account="client"))])
    with Streams(store) as streams:
        for name in two_accounts.names:
            assert two_accounts.broker(name).wait_for_stream_listeners(1, timeout=30)
        for name in two_accounts.names:
            orders_submit_pending(account=name, store=store)
        wait_for(lambda: filled_by_the_stream("dk-d1-entry"), what="the desk's fill")
        wait_for(lambda: filled_by_the_stream("cl-c1-entry"), what="the client's fill")
    fills = {(a, coid) for a, coid, event, _ in streams.seen if event == "fill"}
    assert fills == {("desk", "dk-d1-entry"), ("client", "cl-c1-entry")}
    assert {e.attempt.account for e in OrderExecution.objects.select_related("attempt")} == {
        "desk",
        "client",
    }
    assert streams.stats["desk"].catch_ups >= 1 and streams.stats["client"].catch_ups >= 1
    assert store.get("c1").status is SignalStatus.ACTIVE


def test_an_order_of_another_accounts_prefix_is_never_applied_to_its_attempt(two_accounts, store):
    store.put_documents([("c1", pending(account="client", order_type="limit", limit_price="1"))])
    orders_submit_pending(account="client", store=store)
    attempt = OrderAttempt.objects.get(client_order_id="cl-c1-entry")
    desk = two_accounts.broker("desk")
    with Streams(store) as streams:
        assert desk.wait_for_stream_listeners(1, timeout=30)
        # The desk's broker has an order carrying the client's id (another system's, or a
        # mistake): its fill is not the client's attempt's, and not the desk's to adopt.
        desk.seed_order("AAPL", 1, client_order_id="cl-c1-entry", fillable=True)
        desk.fill_order("cl-c1-entry")
        wait_for(
            lambda: any(a == "desk" and e == "fill" for a, _, e, _ in streams.seen),
            what="the desk's stream to see the fill",
        )
    assert [o for a, _, e, o in streams.seen if a == "desk" and e == "fill"] == ["not_ours"]
    attempt.refresh_from_db()
    assert (attempt.account, attempt.status) == ("client", OrderAttempt.Status.OPEN)
    assert not OrderExecution.objects.exists()
    assert OrderAttempt.objects.count() == 1


def test_one_accounts_broker_down_keeps_reconnecting_and_never_stops_the_other(two_accounts, store):
    client = two_accounts.broker("client")
    client.stop()
    store.put_documents([("d1", pending()), ("c1", pending("MSFT", account="client"))])
    with Streams(store) as streams:
        desk_fills_while_the_client_retries(two_accounts, store, streams)
        client.start()  # back where the account expects it: its stream connects on its own
        assert client.wait_for_stream_listeners(1, timeout=30)
        orders_submit_pending(account="client", store=store)
        wait_for(lambda: filled_by_the_stream("cl-c1-entry"), what="the client's fill")
    assert streams.stats["client"].connects == 1
    assert streams.stats["desk"].disconnects == 0


def test_refused_keys_of_one_account_never_stop_the_others_stream(two_accounts, store):
    two_accounts.set_secret("client", "wrong")
    store.put_documents([("d1", pending())])
    with Streams(store) as streams:
        desk_fills_while_the_client_retries(two_accounts, store, streams)
    assert streams.stats["client"].connects == 0
    assert "refused the API keys" in streams.stats["client"].last_error
    assert two_accounts.broker("client").stream_counters()["connections_unauthorized"] >= 2
    assert streams.stats["desk"].connects == 1


def test_the_command_serves_every_account_from_one_process(two_accounts):
    env = child_env(DATABASE_URL=database_url_of_this_test(), **two_accounts.env())
    consumer = start_command("stream_trade_updates", env=env)
    try:
        for name in two_accounts.names:
            assert two_accounts.broker(name).wait_for_stream_listeners(1, timeout=30), name
        consumer.send_signal(signal.SIGTERM)
        output, _ = consumer.communicate(timeout=30)
    finally:
        if consumer.poll() is None:
            consumer.kill()
    assert consumer.returncode == 0, output
    assert f"consuming {two_accounts.broker('desk').stream_url} for account desk" in output
    assert f"consuming {two_accounts.broker('client').stream_url} for account client" in output
    assert "trade_updates: stopped after 0 events" in output and "2 connects" in output
    assert "Traceback" not in output


def test_one_watcher_sends_each_signal_through_its_own_account(two_accounts, store):
    with Watcher(None, store) as watcher:  # no gateway: each account's own
        store.put_documents(
            [
                ("d1", pending()),
                ("c1", pending(account="client")),
                ("g", pending(account="ghost")),
            ]
        )
        wait_for(
            lambda: all(store.get(i).status is not SignalStatus.PENDING for i in ("d1", "c1", "g")),
            what="every signal to leave PENDING",
        )
    assert two_accounts.coids_at("desk") == {"dk-d1-entry"}
    assert two_accounts.coids_at("client") == {"cl-c1-entry"}
    outcomes = Counter((o.signal_id, str(o.outcome)) for o in watcher.outcomes)
    assert outcomes[("g", "rejected")] == 1
    rejected = store.get("g")
    assert rejected.status is SignalStatus.REJECTED
    assert "account 'ghost' is not configured" in rejected.status_reason
    assert OrderAttempt.objects.get(signal_id="g").account == "desk"


def test_one_accounts_refused_keys_never_stop_the_watcher_for_the_others(two_accounts, store):
    two_accounts.set_secret("client", "wrong")
    with Watcher(None, store):
        store.put_documents([("c1", pending(account="client"))])
        wait_for(
            lambda: two_accounts.broker("client").status_counts().get(401),
            what="the client's keys refused",
        )
        store.put_documents([("d1", pending())])
        wait_for(lambda: store.get("d1").status is not SignalStatus.PENDING, what="the desk's")
    assert two_accounts.coids_at("desk") == {"dk-d1-entry"}
    assert two_accounts.coids_at("client") == set()
    assert store.get("c1").status is SignalStatus.PENDING  # left to the client's order cycle
