"""Firestore's listener in a process of its own (brokerops/intent/firestore_listener.py), on the
emulator: it delivers parsed documents and keeps the view `pending_as_of` answers from, a closed
one leaves no process, and one whose watcher is killed ends by itself."""

import contextlib
import os
import queue
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brokerops.intent.firestore_listener import ProcessPendingWatch
from brokerops.intent.schema import InvalidSignal, Signal, SignalStatus
from tests.waiting import wait_for

pytestmark = pytest.mark.firestore
ROOT = Path(__file__).resolve().parents[2]


def pending(symbol="AAPL"):
    return {"symbol": symbol, "side": "buy", "qty": "1", "order_type": "market"} | {
        "status": "PENDING"
    }


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for a reaper counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def take(delivered: queue.SimpleQueue, wanted: set[str], within_s: float = 15) -> dict:
    got: dict = {}
    deadline = time.monotonic() + within_s
    while not wanted <= set(got) and time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            got.update((d.id, d) for d in delivered.get(timeout=0.1))
    return got


def test_documents_come_parsed_from_the_child_and_the_view_follows_them(firestore_store):
    firestore_store.put_documents([("before", pending()), ("bad", {"status": "PENDING"})])
    delivered: queue.SimpleQueue = queue.SimpleQueue()
    watch = ProcessPendingWatch(firestore_store.listener_spec(), delivered.put)
    try:
        assert watch.pid != os.getpid()
        caught_up = take(delivered, {"before", "bad"})  # the first snapshot: the catch-up
        assert isinstance(caught_up["before"], Signal)
        assert caught_up["before"].status is SignalStatus.PENDING
        assert caught_up["before"].version  # the version travels with the document
        assert isinstance(caught_up["bad"], InvalidSignal)

        firestore_store.put_documents([("after", pending("MSFT"))])
        assert take(delivered, {"after"})["after"].symbol_key == "MSFT"
        assert set(watch.pending_as_of(["before", "after", "nope"], max_age_s=30)) == {
            "before",
            "after",
        }
        assert watch.pending_as_of(["before"], max_age_s=-1) == {}  # too old: not vouched for
        assert watch.failure is None and watch.snapshots >= 2
    finally:
        watch.close()
    assert gone(watch.pid)
    assert watch.failure == "closed"
    assert watch.pending_as_of(["before"], max_age_s=30) == {}


def test_a_killed_listener_process_is_reported_as_failed(firestore_store):
    watch = ProcessPendingWatch(firestore_store.listener_spec(), lambda docs: None)
    try:
        wait_for(lambda: watch.snapshots >= 1, what="the first snapshot")
        os.kill(watch.pid, signal.SIGKILL)
        wait_for(lambda: watch.failure is not None, what="the failure")
        assert "ended" in watch.failure or "exited" in watch.failure
    finally:
        watch.close()


HOLDER = """
import sys, time
from brokerops.intent.firestore_listener import ProcessPendingWatch
from brokerops.intent.watch import ListenerSpec

if __name__ == "__main__":
    watch = ProcessPendingWatch(ListenerSpec(sys.argv[1], sys.argv[2], "signals"), print)
    while watch.snapshots < 1:
        time.sleep(0.05)
    print("child", watch.pid, flush=True)
    time.sleep(120)
"""


def test_the_listener_process_ends_when_its_watcher_is_killed(firestore_store, tmp_path):
    spec = firestore_store.listener_spec()
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    holder = subprocess.Popen(
        [sys.executable, str(script), spec.project, spec.emulator_host],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = holder.stdout.readline()
        while line and not line.startswith("child "):
            line = holder.stdout.readline()
        assert line.startswith("child "), "the listener never listened"
        child = int(line.split()[1])
        assert not gone(child)
        holder.send_signal(signal.SIGKILL)  # no clean-up runs in the watcher
        holder.wait(10)
        wait_for(lambda: gone(child), timeout_s=10, what="the orphaned listener to end")
    finally:
        if holder.poll() is None:
            holder.kill()


def test_whatever_a_document_holds_the_hand_off_goes_on(firestore_store):
    """A reference, a geo point, bytes or a nested map in a PENDING document: each comes over
    the pipe as plain values; one a signal cannot hold makes its document invalid, saying why;
    the documents after it still come."""
    from google.cloud.firestore import GeoPoint

    client = firestore_store._client
    odd = {
        "ref": ("referenced", {**pending(), "account": client.document("accounts/a1")}),
        "geo": ("located", {**pending(), "where": GeoPoint(52.5, 13.4)}),
        "raw": ("bytes", {**pending(), "blob": b"\x00\xff"}),
        "deep": ("nested", {**pending(), "meta": {"a": {"b": [1, {"c": client.document("x/y")}]}}}),
        "fine": ("plain", {**pending(), "meta": {"a": {"b": [1, "two", None]}}}),
        "symbol": ("symbolic", {**pending(), "symbol": client.document("symbols/AAPL")}),
    }
    for doc_id, data in odd.values():
        firestore_store._collection.document(doc_id).set(data)
    delivered: queue.SimpleQueue = queue.SimpleQueue()
    watch = ProcessPendingWatch(firestore_store.listener_spec(), delivered.put)
    try:
        got = take(delivered, {doc_id for doc_id, _ in odd.values()})
        assert watch.failure is None
        assert set(got) == {doc_id for doc_id, _ in odd.values()}
        assert isinstance(got["plain"], Signal)
        for doc_id, where, kind in (
            ("referenced", "account", "reference"),
            ("located", "where", "geo point"),
            ("bytes", "blob", "bytes"),
            ("nested", "meta.a.b[1].c", "reference"),
            ("symbolic", "symbol", "reference"),
        ):
            document = got[doc_id]
            assert isinstance(document, InvalidSignal), doc_id
            assert any(where in r and kind in r for r in document.reasons), document.reasons
        assert got["referenced"].raw["account"] == "<reference accounts/a1>"

        firestore_store.put_documents([("later", pending("MSFT"))])
        assert take(delivered, {"later"})["later"].symbol_key == "MSFT"
        assert watch.failure is None
    finally:
        watch.close()
