"""One account paused by a 429 never delays or fails another's work (docs/design.md section 16).

Account A's broker answers 429 with a long ``Retry-After``: A's gateway pauses A's rate-limiter
bucket (one per API key, in Redis) for that long. During A's pause, B's order cycle and B's
reconciliation run end without waiting on it: B's bucket is not paused, A's still is when B's work
is done, and B's work took a small part of the pause. Each account paused in turn.
"""

import time

import pytest
import redis

from brokerops.alpaca import BrokerRateLimited, RedisLimiter, broker_gateway
from brokerops.intent.schema import SignalStatus
from orders.models import OrderAttempt
from orders.services import orders_submit_pending
from reconciliation.services import reconciliation_run
from tests.accounts.conftest import pending

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

#: A's pause: long beside what B's work takes (a second or so), within ALPACA_MAX_PAUSE_S.
PAUSE_S = 60


@pytest.fixture
def limiters(two_accounts, settings, redis_url):
    """Each account's gateway limiter, a Redis bucket per API key (as on a deployment with
    ``REDIS_URL``); the buckets and their pauses are deleted afterwards (they outlive a test,
    and the accounts' keys are the same in every test)."""
    settings.REDIS_URL = redis_url
    settings.ALPACA_MAX_PAUSE_S = PAUSE_S + 5  # the pause is not cut short
    broker_gateway.cache_clear()
    by_name = {name: broker_gateway(name).limiter for name in two_accounts.names}
    assert all(isinstance(limiter, RedisLimiter) for limiter in by_name.values())
    keys = [key for limiter in by_name.values() for key in (limiter.bucket_key, limiter.pause_key)]
    client = redis.Redis.from_url(redis_url)
    client.delete(*keys)
    yield by_name
    client.delete(*keys)
    broker_gateway.cache_clear()


def resting(**fields) -> dict:
    """A PENDING limit buy far below the price: it rests open (nothing fills beside the seeded
    position while the run reads)."""
    return pending(order_type="limit", limit_price="1.00", **fields)


def pause_by_a_429(two_accounts, store, paused: str) -> None:
    """Account ``paused``'s broker answers its next request 429 (``Retry-After: PAUSE_S``): its
    order cycle fails on it at once (a retry would wait past the read's budget) and leaves its
    signal PENDING."""
    two_accounts.broker(paused).inject_next("*", "429", retry_after_s=PAUSE_S)
    with pytest.raises(BrokerRateLimited):
        orders_submit_pending(account=paused, store=store)
    assert store.get(f"{paused}-1").status is SignalStatus.PENDING


@pytest.mark.parametrize("paused, other", [("client", "desk"), ("desk", "client")])
def test_a_429_pauses_only_its_accounts_bucket_and_the_others_work_goes_on(
    two_accounts, store, limiters, paused, other
):
    store.put_documents([(f"{name}-1", resting(account=name)) for name in two_accounts.names])
    two_accounts.broker(other).seed_position("MSFT", 3)
    pause_by_a_429(two_accounts, store, paused)
    pause = limiters[paused].state()
    assert pause.paused and pause.paused_for_s > PAUSE_S / 2

    assert not limiters[other].state().paused
    started = time.monotonic()
    cycle = orders_submit_pending(account=other, store=store)
    run = reconciliation_run(trigger="command", account=other, store=store)
    took = time.monotonic() - started

    assert [str(o.outcome) for o in cycle.outcomes] == ["submitted"]
    assert two_accounts.coids_at(other) == {two_accounts.coid(other, f"{other}-1")}
    assert run.status == "succeeded", run.error
    assert (run.account, run.positions_seen) == (other, 1)
    # B never waited on A's pause: its own bucket was never paused, A's still is now that
    # B's work is done, and B's work took a small part of the pause A's next request waits.
    assert not limiters[other].state().paused
    assert limiters[paused].state().paused
    assert took < pause.paused_for_s / 4, (took, pause.paused_for_s)
    # A sent nothing and its signal waits for the pause to end.
    assert two_accounts.coids_at(paused) == set()
    assert not OrderAttempt.objects.filter(account=paused).exists()
    assert store.get(f"{paused}-1").status is SignalStatus.PENDING
