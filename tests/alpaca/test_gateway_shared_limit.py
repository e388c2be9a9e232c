"""Two processes sharing one Redis limiter stay under the paper broker's per-key limit together."""

import multiprocessing
import time
import uuid

import pytest

RATE_PER_MIN = 480  # the limiter: 2 at once, then 7.97/s
BURST = 2
BROKER_LIMIT_PER_S = 10  # the paper broker: 10 requests per 1 s window (fixed windows)


def _client_process(base_url, redis_url, prefix, duration, ready, go, queue):
    from brokerops.alpaca import NO_RETRY, AlpacaGateway, BrokerError, RedisLimiter

    limiter = RedisLimiter.from_url(
        redis_url, RATE_PER_MIN, api_key="test-key", burst=BURST, prefix=prefix
    )
    gateway = AlpacaGateway(
        api_key="test-key",
        secret_key="test-secret",
        base_url=base_url,
        limiter=limiter,
        retry_policy=NO_RETRY,
    )
    errors = 0
    ready.release()
    go.wait(30)
    end = time.monotonic() + duration
    while time.monotonic() < end:
        try:
            gateway.get_account()
        except BrokerError:
            errors += 1
    queue.put((gateway.api_calls, errors))


@pytest.mark.redis
def test_two_processes_stay_under_the_broker_limit(broker, redis_url):
    import redis

    broker.set_rate_limit(BROKER_LIMIT_PER_S, window_s=1.0)
    prefix = f"test:brokerops:rl:{uuid.uuid4().hex}"
    ctx = multiprocessing.get_context("spawn")
    queue, ready, go = ctx.Queue(), ctx.Semaphore(0), ctx.Event()
    duration = 3.0
    args = (broker.base_url, redis_url, prefix, duration, ready, go, queue)
    procs = [ctx.Process(target=_client_process, args=args) for _ in range(2)]
    try:
        for p in procs:
            p.start()
        for _ in procs:  # both imported and connected: start together
            assert ready.acquire(timeout=60)
        go.set()
        results = [queue.get(timeout=60) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=10)
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
    calls = sum(r[0] for r in results)
    assert all(r[0] > 0 for r in results), "both processes made calls"
    assert sum(r[1] for r in results) == 0, "no call failed"
    assert broker.rate_limited_count() == 0, "no 429 from the broker"
    assert calls == broker.total_requests()
    # And the shared budget was used, not wasted: close to 7.97/s over the run.
    assert calls >= 0.75 * (RATE_PER_MIN - BURST) / 60 * duration
