"""`orders.services.submit`: the cycle driver. `order_signals_submit` (the one entry point of the
cycle, `order_submit` and the watcher) takes documents in chunks, rejects those that do not
parse, never lets one signal stop the others, stops at a 429, and does the post-send work in
batches or leaves it to its caller; `orders_submit_pending` is one cycle over the PENDING
signals. The paper broker through the real alpaca-py client; end-to-end flows:
tests/integration/test_order_flow.py and test_order_robustness.py."""

from collections import Counter

import pytest

from audit.models import ChainHead
from brokerops.alpaca import BrokerRejected
from brokerops.intent.schema import SignalStatus
from orders.models import OrderAttempt, OrderEvent
from orders.services import submit as submit_module
from orders.services.outcomes import Outcome, SubmitResult
from orders.services.submit import order_signals_submit, order_submit, orders_submit_pending
from tests.orders.services.helpers import CountingStore, pending_doc

pytestmark = pytest.mark.django_db
Kind = OrderEvent.Kind
POST = ("POST", "/v2/orders")


@pytest.fixture
def store():
    return CountingStore()


def documents(store, *docs):
    store.put_documents(list(docs))
    return [store.get(signal_id) for signal_id, _ in docs]


def test_each_document_gets_one_outcome_in_order_the_invalid_ones_first(broker, gateway, store):
    docs = documents(
        store,
        ("a", pending_doc()),
        ("broken", pending_doc(order_type="limit")),
        ("b", pending_doc("MSFT")),
    )
    seen = []

    batch = order_signals_submit(
        documents=docs, gateway=gateway, store=store, actor="order-cycle", on_outcome=seen.append
    )

    assert [(o.signal_id, o.outcome) for o in batch.outcomes] == [
        ("broken", Outcome.REJECTED),
        ("a", Outcome.SUBMITTED),
        ("b", Outcome.SUBMITTED),
    ]
    assert seen == batch.outcomes
    assert (batch.accepted, batch.unsent) == ([], [])  # finished before returning
    assert {store.get(i).status for i in ("a", "b")} == {SignalStatus.SUBMITTED}


def test_without_finishing_the_post_send_work_is_handed_to_the_caller(broker, gateway, store):
    broker.set_auto_fill(False)
    docs = documents(store, ("a", pending_doc()), ("b", pending_doc("MSFT")))

    batch = order_signals_submit(
        documents=docs, gateway=gateway, store=store, actor="watcher", finish=False
    )

    assert [item.signal.id for item in batch.accepted] == ["a", "b"]
    assert {store.get(i).status for i in ("a", "b")} == {SignalStatus.PENDING}
    assert set(OrderAttempt.objects.values_list("status", flat=True)) == {"created"}
    assert broker.counters()[POST] == 2


def test_the_signals_are_re_read_once_per_chunk(broker, gateway, store, monkeypatch):
    monkeypatch.setattr(submit_module, "CHUNK", 2)
    docs = documents(store, *((f"c{i}", pending_doc()) for i in range(3)))
    store.reads.clear()

    order_signals_submit(documents=docs, gateway=gateway, store=store, actor="order-cycle")

    rereads = [ids for ids in store.reads if ids[0].startswith("c")]
    assert rereads[:2] == [["c0", "c1"], ["c2"]]


def test_the_post_send_work_is_done_every_finish_batch(broker, gateway, store, monkeypatch):
    monkeypatch.setattr(submit_module, "CHUNK", 1)  # the batch is looked at after each chunk
    monkeypatch.setattr(submit_module, "FINISH_BATCH", 2)
    finished = []
    real = submit_module.orders_accepted_finish

    def finish(*, accepted, **kwargs):
        finished.append([item.signal.id for item in accepted])
        return real(accepted=accepted, **kwargs)

    monkeypatch.setattr(submit_module, "orders_accepted_finish", finish)
    docs = documents(store, *((f"f{i}", pending_doc()) for i in range(5)))

    order_signals_submit(documents=docs, gateway=gateway, store=store, actor="order-cycle")

    assert finished == [["f0", "f1"], ["f2", "f3"], ["f4"]]


def test_a_429_stops_the_call_leaving_the_rest_unsent_and_unclaimed(broker, gateway, store):
    docs = documents(store, *((f"r{i}", pending_doc()) for i in range(4)))
    broker.inject_next("POST /v2/orders", "429", retry_after_s=1)

    batch = order_signals_submit(documents=docs, gateway=gateway, store=store, actor="order-cycle")

    assert [o.outcome for o in batch.outcomes] == [Outcome.DEFERRED]
    assert [s.id for s in batch.unsent] == ["r1", "r2", "r3"]
    assert broker.orders() == []
    # Claimed together with the first, never reached: free for the next cycle at once.
    retry = order_signals_submit(
        documents=batch.unsent[1:], gateway=gateway, store=store, actor="order-cycle"
    )
    assert [o.outcome for o in retry.outcomes] == [Outcome.SUBMITTED, Outcome.SUBMITTED]


def test_a_bug_on_one_signal_is_recorded_on_it_and_the_others_go_on(
    broker, gateway, store, monkeypatch
):
    real = submit_module.signal_submit_one

    def breaks_for_one(*, signal, **kwargs):
        if signal.id == "a-breaks":
            raise RuntimeError("a bug with this one signal")
        return real(signal=signal, **kwargs)

    monkeypatch.setattr(submit_module, "signal_submit_one", breaks_for_one)
    docs = documents(store, ("a-breaks", pending_doc()), ("b-fine", pending_doc("MSFT")))

    batch = order_signals_submit(documents=docs, gateway=gateway, store=store, actor="order-cycle")

    got = {o.signal_id: o for o in batch.outcomes}
    assert got["a-breaks"].outcome is Outcome.FAILED
    assert got["a-breaks"].reason == "RuntimeError: a bug with this one signal"
    assert got["b-fine"].outcome is Outcome.SUBMITTED
    error = OrderAttempt.objects.get(signal_id="a-breaks").events.get(kind=Kind.ERROR)
    assert error.message == "RuntimeError: a bug with this one signal"


def test_refused_keys_on_one_signal_stop_the_call(broker, gateway, store, monkeypatch):
    refused = BrokerRejected("unauthorized", status=401, code=None, broker_message="")

    def refuses(**kwargs):
        raise refused

    monkeypatch.setattr(submit_module, "signal_submit_one", refuses)
    docs = documents(store, ("a", pending_doc()))
    with pytest.raises(BrokerRejected) as raised:
        order_signals_submit(documents=docs, gateway=gateway, store=store, actor="order-cycle")
    assert raised.value is refused


def test_a_cycle_takes_at_most_its_limit_and_counts_what_it_did(broker, gateway, store):
    store.put_documents(
        [(f"p{i}", pending_doc()) for i in range(3)] + [("broken", pending_doc(order_type="limit"))]
    )
    result = SubmitResult()

    returned = orders_submit_pending(gateway=gateway, store=store, limit=2, result=result)

    assert returned is result
    counts = result.counts()
    assert (counts["signals"], counts["invalid_signals"]) == (3, 1)  # the invalid + 2 of 3
    assert Counter(o.outcome for o in result.outcomes) == {"rejected": 1, "submitted": 2}
    assert result.api_calls == sum(broker.counters().values())
    newest = ChainHead.objects.filter(chain="order_events").order_by("-row_id").first()
    assert newest.row_id == OrderEvent.objects.latest("pk").pk  # covered at the cycle's end
    assert [o.signal_id for o in orders_submit_pending(gateway=gateway, store=store).outcomes] == [
        "p2"
    ]


def test_shards_split_the_signals_the_same_way_every_time(broker, gateway, store):
    store.put_documents([(f"s{i}", pending_doc()) for i in range(12)])
    shard_of = {f"s{i}": submit_module._shard_of(f"s{i}", 3) for i in range(12)}

    first = orders_submit_pending(gateway=gateway, store=store, shard=(1, 3))

    assert {o.signal_id for o in first.outcomes} == {s for s, n in shard_of.items() if n == 1}
    assert shard_of == {f"s{i}": submit_module._shard_of(f"s{i}", 3) for i in range(12)}


def test_one_signal_submitted_alone_returns_its_outcome(broker, gateway, store):
    (signal,) = documents(store, ("one", pending_doc()))
    outcome = order_submit(signal=signal, gateway=gateway, store=store)
    assert (outcome.signal_id, outcome.outcome) == ("one", Outcome.SUBMITTED)
    assert store.get("one").status is SignalStatus.SUBMITTED
    attempt = OrderAttempt.objects.get(signal_id="one")
    assert attempt.events.filter(actor="order-submit").exists()
