"""Stream faults (drop, stall, duplicate; seeded or forced), the counters, the command line, and
``stop()`` with stream connections open."""

from __future__ import annotations

import time

import pytest
from websockets.exceptions import ConnectionClosed

from brokerops.sim import PaperBroker, StreamFaultConfig, StreamFaultKind
from brokerops.sim.__main__ import broker_from_args

from .helpers import Raw, broker_threads, market
from .stream_helpers import message, next_update, open_listening, updates_until


def _fills(raw: Raw, broker: PaperBroker, count: int) -> None:
    """``count`` market orders, each settled: three events each (pending_new, new, fill)."""
    for _ in range(count):
        raw.post("/v2/orders", json=market("AAPL", 1))
        assert broker.settle()


def test_stream_drop_closes_every_connection_now(raw: Raw, paper_broker: PaperBroker) -> None:
    ws = open_listening(paper_broker)
    assert paper_broker.stream_drop() == 1
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=5)
    assert closed.value.rcvd is None  # dropped: no close frame, as a network failure looks
    assert paper_broker.stream_listeners() == 0
    with open_listening(paper_broker) as again:  # its slot is free at once
        raw.post("/v2/orders", json=market("AAPL", 1))
        assert next_update(again)["event"] == "pending_new"
    assert paper_broker.stream_counters()["drops"] == 1


def test_drop_after_n_events(raw: Raw, paper_broker: PaperBroker) -> None:
    paper_broker.set_stream_faults(StreamFaultConfig(drop_after_events=2))
    with open_listening(paper_broker) as ws:
        raw.post("/v2/orders", json=market("AAPL", 1))
        assert [next_update(ws)["event"], next_update(ws)["event"]] == ["pending_new", "new"]
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)  # the fill happened, but this connection never saw it
    assert paper_broker.settle()
    assert paper_broker.orders()[0]["status"] == "filled"
    assert [e.kind for e in paper_broker.stream_fault_log()] == [StreamFaultKind.DROP]


def test_a_forced_drop_loses_the_event_it_replaces(raw: Raw, paper_broker: PaperBroker) -> None:
    paper_broker.stream_inject_next("drop")
    with open_listening(paper_broker) as ws:
        raw.post("/v2/orders", json=market("AAPL", 1))
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
    assert paper_broker.stream_counters()["events_pushed"] == 0


def test_a_duplicate_sends_the_same_event_twice(raw: Raw, paper_broker: PaperBroker) -> None:
    with open_listening(paper_broker) as ws:
        paper_broker.stream_inject_next(StreamFaultKind.DUPLICATE, count=1)
        raw.post("/v2/orders", json=market("AAPL", 1))
        first, second = next_update(ws), next_update(ws)
        assert first == second and first["event"] == "pending_new"
        assert [e["event"] for e in updates_until(ws, "fill")] == ["new", "fill"]
    counters = paper_broker.stream_counters()
    assert (counters["events_duplicated"], counters["events_pushed"]) == (1, 4)


def test_a_stall_holds_events_back_then_sends_them_in_order(
    raw: Raw, paper_broker: PaperBroker
) -> None:
    with open_listening(paper_broker) as ws:
        started = time.monotonic()
        assert paper_broker.stream_stall(1.0) == 1
        raw.post("/v2/orders", json=market("AAPL", 1))
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.2)
        events = updates_until(ws, "fill")
        assert time.monotonic() - started >= 1.0
    assert [e["event"] for e in events] == ["pending_new", "new", "fill"]
    assert paper_broker.stream_counters()["stalls"] == 1


def test_a_forced_stall_delays_that_event(raw: Raw, paper_broker: PaperBroker) -> None:
    with open_listening(paper_broker) as ws:
        paper_broker.stream_inject_next("stall", stall_s=0.5)
        started = time.monotonic()
        raw.post("/v2/orders", json=market("AAPL", 1))
        assert next_update(ws)["event"] == "pending_new"
        assert time.monotonic() - started >= 0.45


def _fault_pattern(seed: int) -> list[tuple[int, StreamFaultKind]]:
    broker = PaperBroker(default_assets=True, strict=False)
    config = StreamFaultConfig(seed=seed, duplicate_rate=0.3, stall_rate=0.2, stall_s=0.01)
    broker.set_stream_faults(config)
    with broker, open_listening(broker) as ws:
        raw = Raw(broker.base_url)
        _fills(raw, broker, 5)  # instant fills: new and fill, 10 events
        seen = 0
        while seen < 10 + sum(1 for e in broker.stream_fault_log() if e.kind == "duplicate"):
            message(ws)
            seen += 1
        raw.close()
        return [(e.draw, e.kind) for e in broker.stream_fault_log()]


def test_seeded_faults_are_reproducible() -> None:
    first, again, other = _fault_pattern(3), _fault_pattern(3), _fault_pattern(4)
    assert first == again
    assert first and {kind for _, kind in first} <= {"duplicate", "stall"}
    assert first != other


def test_seeded_drop_rate_drops_the_connection(raw: Raw, paper_broker: PaperBroker) -> None:
    paper_broker.set_stream_faults(StreamFaultConfig(seed=1, drop_rate=1.0))
    with open_listening(paper_broker) as ws:
        raw.post("/v2/orders", json=market("AAPL", 1))
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
    paper_broker.clear_stream_faults()
    assert paper_broker.stream_fault_log() == []


def test_stream_fault_config_checks_its_rates() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        StreamFaultConfig(drop_rate=1.5)
    with pytest.raises(ValueError, match="add up"):
        StreamFaultConfig(drop_rate=0.6, duplicate_rate=0.6)
    with pytest.raises(ValueError, match="drop_after_events"):
        StreamFaultConfig(drop_after_events=0)


def test_command_line_stream_faults() -> None:
    pairs = ("seed=9", "drop_after_events=3", "stall_rate=0.1", "stall_s=2")
    broker, _ = broker_from_args([arg for pair in pairs for arg in ("--stream-fault", pair)])
    assert broker.stream_faults == StreamFaultConfig(
        seed=9, drop_after_events=3, stall_rate=0.1, stall_s=2.0
    )
    with pytest.raises(SystemExit):
        broker_from_args(["--stream-fault", "nonsense=1"])


def test_counters_reset_with_the_http_counters(raw: Raw, paper_broker: PaperBroker) -> None:
    with open_listening(paper_broker) as ws:
        raw.post("/v2/orders", json=market("AAPL", 1))
        updates_until(ws, "fill")
    assert paper_broker.stream_counters()["events_pushed"] == 3
    paper_broker.reset_counters()
    assert set(paper_broker.stream_counters().values()) == {0}


# ---------------------------------------------------------------------- stop


def test_stop_ends_promptly_with_stream_connections_open() -> None:
    before = broker_threads("paper-broker-stream")
    broker = PaperBroker(default_assets=True).start()
    listening = open_listening(broker)
    stalled = open_listening(broker, *_other_key(broker))
    broker.stream_stall(300)
    Raw(broker.base_url).post("/v2/orders", json=market("AAPL", 1))  # queued behind the stall
    started = time.monotonic()
    broker.stop()
    # Stop wakes the stall rather than waiting it out: the bound is far below the stall and far
    # above a loaded machine's scheduling delays, so it tells the two apart and nothing else.
    assert time.monotonic() - started < 60
    for ws in (listening, stalled):
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(timeout=5)
    assert not broker_threads("paper-broker-stream") - before
    broker.start()  # and it serves the stream again after a restart
    try:
        with open_listening(broker) as ws:
            broker.seed_position("AAPL", 1)
            broker.close_position_manually("AAPL")
            assert updates_until(ws, "fill")[-1]["position_qty"] == "0"
    finally:
        broker.stop()


def _other_key(broker: PaperBroker) -> tuple[str, str]:
    broker.add_key("stall-key", "stall-secret")
    return "stall-key", "stall-secret"
