"""Token-bucket rate limiter: in-process (fake clock) and shared through real Redis."""

import multiprocessing
import time
import uuid

import pytest

from brokerops.alpaca import BrokerRateLimited, InProcessLimiter, RedisLimiter, build_limiter
from brokerops.alpaca.limiter import key_scope


def test_in_process_burst_then_steady_rate(clock):
    limiter = InProcessLimiter(70, burst=10, clock=clock, sleep=clock.sleep)  # refill 1/s
    for _ in range(10):
        limiter.acquire()
    assert clock.sleeps == []
    limiter.acquire()
    assert clock.sleeps == [pytest.approx(1.0)]


def test_in_process_never_exceeds_budget_in_any_minute(clock):
    limiter = InProcessLimiter(200, clock=clock, sleep=clock.sleep)
    stamps = []
    for _ in range(600):
        limiter.acquire()
        stamps.append(clock.now)
    # Every sliding 60 s window holds at most 200 acquisitions ...
    j = 0
    for i, t in enumerate(stamps):
        while stamps[j] <= t - 60.0:
            j += 1
        assert i - j + 1 <= 200
    # ... and the long-run rate is at least 90% of the budget.
    per_min = (len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 60.0)
    assert 180 <= per_min <= 200


def test_pause_blocks_until_reset_then_resumes(clock):
    limiter = InProcessLimiter(600, burst=5, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    limiter.pause(12.0)
    limiter.acquire()
    assert sum(clock.sleeps) >= 12.0


def test_wait_is_bounded(clock):
    limiter = InProcessLimiter(60, burst=1, max_wait_s=5.0, clock=clock, sleep=clock.sleep)
    limiter.pause(30.0)
    with pytest.raises(BrokerRateLimited) as info:
        limiter.acquire()
    assert info.value.retry_after_s == pytest.approx(30.0)
    assert clock.sleeps == []


def test_build_limiter_shares_one_in_process_bucket_per_key():
    a = build_limiter(redis_url=None, api_key="k1", rate_per_min=200)
    b = build_limiter(redis_url=None, api_key="k1", rate_per_min=200)
    c = build_limiter(redis_url=None, api_key="k2", rate_per_min=200)
    assert a is b and a is not c


def test_key_scope_hides_the_key():
    scope = key_scope("AKSECRETKEYID")
    assert "AKSECRETKEYID" not in scope and len(scope) == 16


# --- Redis -------------------------------------------------------------------------------------


def _redis_limiter(url, prefix, rate, burst, **kwargs):
    return RedisLimiter.from_url(
        url, rate, api_key="shared-key", burst=burst, prefix=prefix, **kwargs
    )


@pytest.fixture
def prefix(redis_url):
    import redis

    prefix = f"test:brokerops:rl:{uuid.uuid4().hex}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


@pytest.mark.redis
def test_redis_keys_are_scoped_by_key_hash(redis_url, prefix):
    limiter = _redis_limiter(redis_url, prefix, 600, 5)
    limiter.acquire()
    assert limiter.bucket_key == f"{prefix}:{key_scope('shared-key')}:bucket"
    assert "shared-key" not in limiter.bucket_key + limiter.pause_key


@pytest.mark.redis
def test_redis_burst_then_throttle(redis_url, prefix):
    limiter = _redis_limiter(redis_url, prefix, 1200, 5)  # refill 19.9/s
    start = time.monotonic()
    for _ in range(15):
        limiter.acquire()
    elapsed = time.monotonic() - start
    # 5 immediately, 10 more at ~20/s (0.5 s): the lower bound is the throttle; the upper one only
    # tells "paced" from "stuck", with room for a loaded machine's scheduling delays.
    assert 0.4 <= elapsed <= 5


@pytest.mark.redis
def test_redis_pause_is_seen_by_another_limiter(redis_url, prefix):
    first = _redis_limiter(redis_url, prefix, 6000, 50)
    second = _redis_limiter(redis_url, prefix, 6000, 50, max_wait_s=0.2)
    first.pause(1.0)
    with pytest.raises(BrokerRateLimited) as info:
        second.acquire()
    assert 0.5 < info.value.retry_after_s <= 1.0
    start = time.monotonic()
    _redis_limiter(redis_url, prefix, 6000, 50).acquire()
    assert time.monotonic() - start >= 0.5


@pytest.mark.redis
def test_redis_unreachable_is_unavailable_not_sent():
    from brokerops.alpaca import BrokerUnavailable

    limiter = RedisLimiter.from_url("redis://127.0.0.1:1/0", 100, api_key="k")
    with pytest.raises(BrokerUnavailable, match="not sent"):
        limiter.acquire()


def _worker(url, prefix, rate, burst, duration, ready, go, queue):
    limiter = _redis_limiter(url, prefix, rate, burst)
    stamps = []
    ready.release()
    go.wait(30)
    end = time.time() + duration
    while time.time() < end:
        try:
            limiter.acquire()
        except BrokerRateLimited:
            continue
        stamps.append(time.time())
    queue.put(stamps)


@pytest.mark.redis
def test_two_processes_share_one_budget(redis_url, prefix):
    rate, burst, duration = 600, 5, 3.0  # 10/s: 5 + 9.92/s
    ctx = multiprocessing.get_context("spawn")
    queue, ready, go = ctx.Queue(), ctx.Semaphore(0), ctx.Event()
    args = (redis_url, prefix, rate, burst, duration, ready, go, queue)
    procs = [ctx.Process(target=_worker, args=args) for _ in range(2)]
    for p in procs:
        p.start()
    for _ in procs:  # both imported: start together
        assert ready.acquire(timeout=60)
    go.set()
    results = [queue.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    assert all(results), "both processes made progress"
    stamps = sorted(t for r in results for t in r)
    span = stamps[-1] - stamps[0]
    allowed = burst + (rate - burst) / 60.0 * span
    assert len(stamps) <= allowed + 1
    # Together they used most of the budget (each alone would have taken it all).
    assert len(stamps) >= 0.8 * (rate - burst) / 60.0 * span


# --- a 429 pause never blocks longer than ALPACA_MAX_PAUSE_S (issue 9 item 6) --------------------


def test_in_process_pause_is_capped_and_says_why(clock):
    limiter = InProcessLimiter(600, burst=5, clock=clock, sleep=clock.sleep, max_pause_s=65)
    limiter.pause(86400.0)
    with pytest.raises(BrokerRateLimited, match="paused by a 429 until") as info:
        limiter.acquire()  # max_wait_s 60 < 65: told at once, with the reason
    assert info.value.retry_after_s == pytest.approx(65.0)
    clock.now += 65.0
    limiter.acquire()  # the pause is over: one refill slot, no day-long wait
    assert clock.sleeps == [pytest.approx(60 / 595)]


def test_a_slot_shortage_is_not_reported_as_a_pause(clock):
    limiter = InProcessLimiter(60, burst=1, max_wait_s=0.5, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    with pytest.raises(BrokerRateLimited, match="no request slot within") as info:
        limiter.acquire()
    assert "paused" not in str(info.value)


def _old_version_pause(redis_url, limiter, seconds):
    """What an older brokerops left behind after a ``Retry-After: 86400``: a day-long pause key
    and a bucket whose refill starts a day from now."""
    import redis

    client = redis.Redis.from_url(redis_url)
    server_now = float(client.time()[0])
    client.set(limiter.pause_key, "1", px=int(seconds * 1000))
    client.hset(limiter.bucket_key, mapping={"tokens": "0", "ts": str(server_now + seconds)})


@pytest.mark.redis
def test_redis_pause_left_by_an_older_version_cannot_block(redis_url, prefix):
    limiter = _redis_limiter(redis_url, prefix, 6000, 50, max_wait_s=5.0, max_pause_s=1.0)
    _old_version_pause(redis_url, limiter, 86400)
    start = time.monotonic()
    limiter.acquire()  # clamped to 1 s, bucket refill no later than the cap either
    assert time.monotonic() - start <= 3.0


@pytest.mark.redis
def test_redis_stale_pause_is_reported_with_its_reason(redis_url, prefix, caplog):
    import redis

    limiter = _redis_limiter(redis_url, prefix, 6000, 50, max_wait_s=0.1, max_pause_s=65.0)
    _old_version_pause(redis_url, limiter, 86400)
    with (
        caplog.at_level("WARNING", logger="brokerops.alpaca"),
        pytest.raises(BrokerRateLimited) as info,
    ):
        limiter.acquire()
    assert "paused by a 429 until" in str(info.value)
    assert 60.0 < info.value.retry_after_s <= 65.0
    # Healed for everyone: the stored pause now ends within the cap.
    assert 0 < redis.Redis.from_url(redis_url).pttl(limiter.pause_key) <= 65_000
    assert any("65" in r.getMessage() for r in caplog.records)


@pytest.mark.redis
def test_redis_pause_is_capped_when_set(redis_url, prefix):
    import redis

    limiter = _redis_limiter(redis_url, prefix, 6000, 50, max_pause_s=2.0)
    limiter.pause(86400)
    assert 0 < redis.Redis.from_url(redis_url).pttl(limiter.pause_key) <= 2000


def test_build_limiter_passes_the_cap():
    limiter = build_limiter(redis_url=None, api_key="k-cap", rate_per_min=200, max_pause_s=7)
    assert limiter.max_pause_s == 7
    assert build_limiter(redis_url=None, api_key="k-cap", rate_per_min=200).max_pause_s == 65
