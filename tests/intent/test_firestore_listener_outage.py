"""A Firestore listener while Firestore is unreachable: it must not spin.

google-cloud-firestore's `Watch` reopens its stream at once after every recoverable error
(api_core's `ResumableBidiRpc` without `throttle_reopen`); with the server gone every open fails
at once, so an unthrottled listener reopens in a loop (measured: ~60% of a core for minutes).
`PendingWatch` gives it the library's own throttle: at most 5 reopens in 10 s."""

import threading
import time

import pytest

from brokerops.intent.firestore import FirestoreSignalStore
from brokerops.intent.firestore_client import firestore_client
from tests.firestore_emulator import running_emulator
from tests.waiting import wait_for

pytestmark = pytest.mark.firestore


def test_a_listener_reopens_its_stream_at_most_5_times_in_10_s_while_firestore_is_gone(
    tmp_path,
):
    with running_emulator(tmp_path / "emulator.log") as emulator:
        client = firestore_client(project=emulator.project, emulator_host=emulator.host)
        watch = FirestoreSignalStore(client, "signals").watch_pending(lambda docs: None)
        wait_for(lambda: watch.snapshots >= 1, what="the first snapshot")
        rpc = watch._watch._rpc
        start_rpc, opens, lock = rpc._start_rpc, [], threading.Lock()

        def counted(*args, **kwargs):
            with lock:
                opens.append(time.monotonic())
            return start_rpc(*args, **kwargs)

        rpc._start_rpc = counted
    try:  # the emulator is stopped: every reopen fails at once
        time.sleep(4)
        assert 1 <= len(opens) <= 6, f"{len(opens)} reopens in 4 s"
    finally:
        watch.close()
