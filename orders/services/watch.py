"""The signal watcher: each new PENDING signal goes to the order service at once
(docs/design.md section 15).

The order cycle runs every ``ORDER_SUBMIT_INTERVAL_S``; the watcher takes a signal as soon as
the store shows it (`brokerops.intent.watch`: Firestore's real-time listener, or a short poll of
the local store) and sends it through the cycle's own code (`orders.services.submit`): the claim
of the attempt by ``client_order_id``, written before any HTTP call, the re-read of the signal
once claimed, validation, risk checks, the shared rate limiter and the audit trail. So watcher,
cycle, a second watcher and a restarted one never make two orders for one signal: whoever does
not hold the claim gets ``BUSY`` and sends nothing.

Threads: the caller's thread reads the source (the listener's callbacks only queue documents),
keeps the connection up (a lost one reconnects with backoff and jitter; each connection starts
with every PENDING document) and schedules retries. ``workers`` threads take queued signals
in batches (everything waiting, up to `BATCH_MAX`) and send them through the order service's one
entry point (`order_signals_submit`: positions and prices read once per batch; before its
request each signal is checked PENDING in the listener's last snapshot when that is at most
`REREAD_MAX_AGE_S` old, else by one read of its chunk's documents). The post-send work of what
they sent (the attempts' state, PENDING -> SUBMITTED, the audit rows) is not theirs: a finisher
thread does it for everything accepted since its last turn at once (`orders_accepted_finish`:
on Firestore one read and one batched commit for all of them), so a worker is free for the next
signal as soon as the broker answered. A signal's outcome is reported once its post-send work
is done. A signal whose outcome is not final (BUSY, DEFERRED, UNKNOWN, FAILED) is read again
later and, still PENDING, retried, up to `RETRY_LIMIT` times; after that the beat's order
cycle, the safety net, takes it.

One process serves every account (docs/design.md section 16): one connection to the store, and
per account its own workers (started with the account's first signal), which send only that
account's signals, through its gateway. A signal goes to the account it names (none: the
default account); one naming an unknown account goes, as an invalid signal saying so, to the
account that owns unowned rows (`Accounts.rows_owner`), which rejects it once. An account whose
keys are refused (401) stops sending (its signals are left to the order cycle) and the others
go on; the watch ends with the refusal only when every account's keys were refused.
"""

from __future__ import annotations

import heapq
import logging
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import DatabaseError, connections

from audit.services import chain_heads_record_moved
from brokerops.accounts import Accounts, configured
from brokerops.alpaca import BrokerError, BrokerRejected, broker_gateway
from brokerops.intent.schema import InvalidSignal, Signal, SignalStatus
from brokerops.intent.store import AccountScope, SignalStore, SignalStoreError
from brokerops.intent.watch import Document, PendingSource

from .context import AcceptedOrder
from .finish import orders_accepted_finish
from .outcomes import Outcome, SignalOutcome
from .stream import Backoff
from .submit import order_signals_submit

if TYPE_CHECKING:
    from brokerops.alpaca import AlpacaGateway

logger = logging.getLogger(__name__)
ACTOR = "signal watcher"
#: Signals one worker takes at once (one read of positions and prices for all of them).
BATCH_MAX = 50
#: Outcomes after which the signal is read again later and, still PENDING, retried.
RETRIED = frozenset({Outcome.BUSY, Outcome.DEFERRED, Outcome.UNKNOWN, Outcome.FAILED})
#: Retries of one signal: after 1, 2, 4, ... seconds (jittered), at most `RETRY_MAX_S` apart.
RETRY_LIMIT = 8
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 30.0
#: How long a stop waits for the signals being sent to finish.
STOP_TIMEOUT_S = 30.0


@dataclass
class WatchStats:
    connects: int = 0
    disconnects: int = 0
    documents: int = 0  # documents received from the store (catch-ups included)
    retries: int = 0
    outcomes: Counter = field(default_factory=Counter)
    last_error: str = ""


def signals_watch(
    *,
    source: Callable[[], PendingSource],
    store: SignalStore,
    stop: threading.Event,
    gateway: AlpacaGateway | None = None,
    workers: int | None = None,
    backoff: Backoff | None = None,
    on_outcome: Callable[[SignalOutcome], None] | None = None,
    stats: WatchStats | None = None,
) -> WatchStats:
    """Watch PENDING signals until ``stop`` is set (SIGTERM) and submit each through its own
    account's gateway (`broker_gateway`; ``gateway``, when given, is the default account's);
    returns counters.

    ``source`` makes a new connection (`brokerops.intent.watch.pending_source`); a lost one is
    replaced after a backoff. Refused keys (401) end the watch with `BrokerRejected` when they
    are every account's: nothing can be sent until they are fixed. ``on_outcome`` (tests,
    benchmarks) sees every outcome, on the worker's thread.
    """
    backoff = backoff or Backoff(settings.WATCH_RECONNECT_MIN_S, settings.WATCH_RECONNECT_MAX_S)
    stats = stats or WatchStats()
    pool = _Router.of_accounts(
        store=store, stats=stats, on_outcome=on_outcome, gateway=gateway, workers=workers
    )
    try:
        while not stop.is_set() and pool.fatal is None:
            connection = source()
            try:
                connection.open()
                pool.source = connection
                stats.connects += 1
                logger.info(
                    "signal watcher: watching PENDING signals (%s)", type(connection).__name__
                )
                while not stop.is_set() and pool.fatal is None:
                    docs = connection.take(timeout_s=0.2)
                    backoff.reset()
                    stats.documents += len(docs)
                    pool.put(docs)
                    pool.retry_due()
            except (SignalStoreError, DatabaseError) as exc:
                stats.disconnects += 1
                stats.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("signal watcher: %s; reconnecting", stats.last_error)
            finally:
                pool.source = None
                connection.close()
            if not stop.is_set() and pool.fatal is None:
                stop.wait(backoff.next_s())
    finally:
        pool.stop()
    if pool.fatal is not None:
        raise pool.fatal
    return stats


_STOP = object()


class _Router:
    """Each document to its account's workers (see the module doc), made with the account's
    first document; the same interface as one account's `_Workers` to the watch loop."""

    def __init__(
        self,
        accounts: Accounts,
        make: Callable[[str, Callable[[list[Document]], None]], _Workers],
    ) -> None:
        self._accounts, self._make = accounts, make
        self._pools: dict[str, _Workers] = {}
        self._source: PendingSource | None = None
        self._lock = threading.Lock()

    @classmethod
    def of_accounts(
        cls,
        *,
        store: SignalStore,
        stats: WatchStats,
        on_outcome: Callable[[SignalOutcome], None] | None,
        gateway: AlpacaGateway | None,
        workers: int | None,
    ) -> _Router:
        """The router of every configured account; ``gateway``: the default account's."""
        accounts = configured()
        default = accounts.default

        def workers_of(name: str, route: Callable[[list[Document]], None]) -> _Workers:
            own = gateway if gateway is not None and default and name == default.name else None
            return _Workers(
                workers or settings.WATCH_WORKERS,
                gateway=own or broker_gateway(name),
                store=store,
                stats=stats,
                on_outcome=on_outcome,
                account=name,
                route=route,
            )

        return cls(accounts, workers_of)

    @property
    def source(self) -> PendingSource | None:
        return self._source

    @source.setter
    def source(self, value: PendingSource | None) -> None:
        self._source = value
        for pool in self._all():
            pool.source = value

    @property
    def fatal(self) -> BrokerRejected | None:
        """The refusal that ends the watch: once every account's keys were refused."""
        refused = [pool.fatal for pool in self._all() if pool.fatal is not None]
        return refused[0] if refused and len(refused) == len(self._accounts) else None

    def put(self, docs: list[Document]) -> None:
        by_account: dict[str, list[Document]] = {}
        for doc in docs:
            named = doc.account if isinstance(doc, Signal) else doc.raw_account
            name = self._accounts.owner(named) or self._accounts.rows_owner
            # The signal, or (an unknown account's) an InvalidSignal saying so: rejected once.
            item = AccountScope(name, self._accounts).take(doc) or doc
            by_account.setdefault(name, []).append(item)
        for name, items in by_account.items():
            pool = self._pool(name)
            if pool.fatal is None:  # else its keys were refused: left to the order cycle
                pool.put(items)

    def retry_due(self) -> None:
        for pool in self._all():
            pool.retry_due()

    def stop(self) -> None:
        for pool in self._all():
            pool.stop()

    def _pool(self, name: str) -> _Workers:
        with self._lock:
            pool = self._pools.get(name)
            if pool is None:
                pool = self._pools[name] = self._make(name, self.put)
                pool.source = self._source
            return pool

    def _all(self) -> list[_Workers]:
        with self._lock:
            return list(self._pools.values())


class _Workers:
    """Worker threads sending queued signals, and the retry schedule (see the module doc)."""

    def __init__(
        self,
        count: int,
        *,
        gateway: AlpacaGateway,
        store: SignalStore,
        stats: WatchStats,
        on_outcome: Callable[[SignalOutcome], None] | None,
        account: str,
        route: Callable[[list[Document]], None] | None = None,
    ) -> None:
        self.gateway, self.store, self.stats, self.on_outcome = gateway, store, stats, on_outcome
        self.account = account
        self._route = route or self.put  # a retried signal may name another account now
        self.fatal: BrokerRejected | None = None
        self.source: PendingSource | None = None  # the open connection (set by the caller)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._held: set[str] = set()  # queued or being sent: a repeat is not queued again
        # A newer version of a held signal, taken once the one held is done (the latest only).
        self._newer: dict[str, Document] = {}
        self._tries: dict[str, int] = {}
        self._due: list[tuple[float, str]] = []  # (monotonic time, signal id), a heap
        self._rng = random.Random()  # noqa: S311 - jitter, not a secret
        self._threads = [
            threading.Thread(target=self._run, name=f"signal-watcher-{i}", daemon=True)
            for i in range(max(1, count))
        ]
        self._finishing: queue.SimpleQueue = queue.SimpleQueue()
        self._finisher = threading.Thread(
            target=self._finish, name="signal-watcher-finisher", daemon=True
        )
        self._finisher.start()
        for thread in self._threads:
            thread.start()

    # --- the caller's thread ----------------------------------------------------------------------

    def put(self, docs: list[Document]) -> None:
        with self._lock:
            for doc in docs:
                if doc.id in self._held:
                    # Queued or being sent: what is being decided on may be the older version
                    # (withdrawn before its send, or rewritten): this one is handled after it.
                    self._newer[doc.id] = doc
                    continue
                self._held.add(doc.id)
                self._queue.put(doc)

    def retry_due(self) -> None:
        """Read the signals whose retry is due; queue those still PENDING."""
        now = time.monotonic()
        with self._lock:
            due: list[str] = []
            while self._due and self._due[0][0] <= now:
                due.append(heapq.heappop(self._due)[1])
        for signal_id in due:
            try:
                current = self.store.get(signal_id)
            except SignalStoreError:
                self._schedule(signal_id)  # the store is down: try again later
                continue
            if _is_pending(current):
                self.stats.retries += 1
                self._route([current])
            else:
                with self._lock:
                    self._tries.pop(signal_id, None)

    def stop(self) -> None:
        """Drop what is queued (still PENDING: the next start or cycle takes it), let the
        signals being sent finish, then end the threads."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        for _ in self._threads:
            self._queue.put(_STOP)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._finishing.put(_STOP)  # after the workers: what they sent is finished first
        self._finisher.join(max(0.0, deadline - time.monotonic()))

    # --- worker threads ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                batch = [item]
                while len(batch) < BATCH_MAX:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is _STOP:
                        self._queue.put(_STOP)  # for this thread's next turn
                        break
                    batch.append(more)
                try:
                    self._send(batch)
                except BrokerRejected as exc:  # refused keys (401): the account's sending stops
                    self.fatal = exc
                    logger.error("signal watcher: account %s: %s", self.account, exc)
                    for doc in batch:
                        self._release(doc.id)
                except Exception:  # a bug: logged; the signals are retried, the cycle covers them
                    logger.exception("signal watcher: %d signal(s) not handled", len(batch))
                    for doc in batch:
                        self._done(doc.id, None)
        finally:
            connections.close_all()  # this thread's own database connections

    def _send(self, batch: list[Document]) -> None:
        outcomes: dict[str, SignalOutcome] = {}
        try:
            sent = order_signals_submit(
                documents=batch,
                gateway=self.gateway,
                store=self.store,
                actor=ACTOR,
                finish=False,
                on_outcome=lambda outcome: outcomes.__setitem__(outcome.signal_id, outcome),
                view=self._pending_as_of,
                account=self.account,
            )
        except BrokerRejected as exc:
            if exc.is_auth_error:
                raise
            self._all_failed(batch, outcomes, exc)
            return
        except BrokerError as exc:  # positions unreadable: nothing can be checked, nor sent
            self._all_failed(batch, outcomes, exc)
            return
        finishing = {item.signal.id for item in sent.accepted}
        for doc in batch:
            if doc.id not in finishing:  # not sent (None: a 429 stopped the batch): retried
                self._done(doc.id, outcomes.get(doc.id))
        if sent.accepted:
            self._finishing.put(sent.accepted)

    def _pending_as_of(self, signal_ids, max_age_s: float) -> dict[str, Document]:
        """What the open connection vouches for (its listener's last snapshot); {} without one."""
        source = self.source
        return source.pending_as_of(signal_ids, max_age_s) if source is not None else {}

    def _finish(self) -> None:
        """The finisher thread: the post-send work of everything accepted since its last turn."""
        try:
            stopping = False
            while not stopping:
                items: list[AcceptedOrder] = []
                first = self._finishing.get()
                for more in (first, *self._drain(self._finishing)):
                    if more is _STOP:
                        stopping = True
                    else:
                        items.extend(more)
                if not items:
                    continue
                try:
                    orders_accepted_finish(
                        accepted=items, store=self.store, gateway=self.gateway, actor=ACTOR
                    )
                except Exception:  # a bug or the database: the signals are retried, the cycle too
                    logger.exception("signal watcher: post-send work of %d order(s)", len(items))
                    for item in items:
                        self._done(item.signal.id, item.outcome, retry=True)
                    continue
                for item in items:
                    self._done(item.signal.id, item.outcome)
                try:
                    chain_heads_record_moved(recorded_by=ACTOR)
                except DatabaseError:  # the next cycle's or the beat task's heads cover them
                    logger.exception("signal watcher: audit chain heads not recorded")
        finally:
            connections.close_all()

    @staticmethod
    def _drain(q: queue.SimpleQueue) -> list:
        items = []
        while True:
            try:
                items.append(q.get_nowait())
            except queue.Empty:
                return items

    def _all_failed(
        self, batch: list[Document], outcomes: dict[str, SignalOutcome], exc: Exception
    ) -> None:
        logger.warning("signal watcher: %d signal(s) not sent: %s", len(batch), exc)
        for doc in batch:
            self._done(doc.id, outcomes.get(doc.id))

    def _done(self, signal_id: str, outcome: SignalOutcome | None, *, retry: bool = False) -> None:
        """Record an outcome (None: not attempted) and schedule a retry when it is not final."""
        if outcome is not None:
            self.stats.outcomes[str(outcome.outcome)] += 1
            if self.on_outcome is not None:
                self.on_outcome(outcome)
        if retry or outcome is None or outcome.outcome in RETRIED:
            if not self._release(signal_id, keep_tries=True):
                self._schedule(signal_id)
        else:
            self._release(signal_id)

    def _release(self, signal_id: str, *, keep_tries: bool = False) -> bool:
        """Done with a signal: a newer version that came meanwhile is queued now (True; the
        signal stays held), else the signal is free for the next version that comes."""
        with self._lock:
            newer = self._newer.pop(signal_id, None)
            if newer is not None:
                self._queue.put(newer)
                return True
            self._held.discard(signal_id)
            if not keep_tries:
                self._tries.pop(signal_id, None)
            return False

    def _schedule(self, signal_id: str) -> None:
        with self._lock:
            tries = self._tries.get(signal_id, 0)
            if tries >= RETRY_LIMIT:
                self._tries.pop(signal_id, None)
                logger.warning(
                    "signal watcher: %r still not sent after %d retries; the order cycle takes it",
                    signal_id,
                    tries,
                )
                return
            self._tries[signal_id] = tries + 1
            delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2**tries) * self._rng.uniform(0.5, 1.0)
            heapq.heappush(self._due, (time.monotonic() + delay, signal_id))


def _is_pending(doc: Document | None) -> bool:
    if isinstance(doc, Signal):
        return doc.status is SignalStatus.PENDING
    return isinstance(doc, InvalidSignal) and doc.raw_status == SignalStatus.PENDING.value
