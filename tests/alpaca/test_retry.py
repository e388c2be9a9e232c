"""Retry policy for reads: backoff with jitter, Retry-After honoured, bounded; observed on a fake
clock, never slept."""

import pytest

from brokerops.alpaca import (
    BrokerNotFound,
    BrokerRateLimited,
    BrokerRejected,
    BrokerUnavailable,
    RetryPolicy,
)


def _flaky(errors, result="ok"):
    calls = []

    def fn():
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result

    return fn, calls


def _policy(clock, **kwargs):
    return RetryPolicy(sleep=clock.sleep, clock=clock, random=lambda: 0.5, **kwargs)


def test_unavailable_is_retried_with_growing_jittered_backoff(clock):
    fn, calls = _flaky([BrokerUnavailable("503")] * 3)
    assert _policy(clock, max_attempts=4, base_s=1.0).call(fn) == "ok"
    assert len(calls) == 4
    # Equal jitter at random()=0.5: 3/4 of 1, 2, 4.
    assert clock.sleeps == [0.75, 1.5, 3.0]


def test_jitter_stays_within_half_and_full_backoff(clock):
    low = RetryPolicy(random=lambda: 0.0, base_s=2.0)
    high = RetryPolicy(random=lambda: 0.999999, base_s=2.0, max_backoff_s=5.0)
    assert low.backoff(1) == 1.0 and low.backoff(2) == 2.0
    assert high.backoff(3) == pytest.approx(5.0, abs=1e-5)  # capped at max_backoff_s


def test_retry_after_is_waited_at_least(clock):
    fn, calls = _flaky([BrokerRateLimited("429", retry_after_s=7.0)])
    assert _policy(clock, base_s=0.5).call(fn) == "ok"
    assert clock.sleeps == [7.0]
    assert len(calls) == 2


def test_rate_limited_without_hint_uses_backoff(clock):
    fn, _ = _flaky([BrokerRateLimited("429", retry_after_s=None)])
    _policy(clock, base_s=2.0).call(fn)
    assert clock.sleeps == [1.5]


def test_attempts_are_bounded_and_last_error_raised(clock):
    errors = [BrokerUnavailable(f"503 #{i}") for i in range(10)]
    fn, calls = _flaky(errors)
    with pytest.raises(BrokerUnavailable, match="#2"):
        _policy(clock, max_attempts=3).call(fn)
    assert len(calls) == 3 and len(clock.sleeps) == 2


def test_total_time_is_bounded(clock):
    # A Retry-After past the total budget: give up at once and hand the wait to the caller.
    fn, calls = _flaky([BrokerRateLimited("429", retry_after_s=120.0)])
    with pytest.raises(BrokerRateLimited) as info:
        _policy(clock, max_total_s=30.0).call(fn)
    assert info.value.retry_after_s == 120.0
    assert len(calls) == 1 and clock.sleeps == []


def test_total_time_counts_time_spent_in_attempts(clock):
    def slow_failure():
        clock.now += 10.0  # each attempt times out after 10 s
        raise BrokerUnavailable("timeout")

    with pytest.raises(BrokerUnavailable):
        _policy(clock, max_attempts=10, max_total_s=25.0, base_s=1.0).call(slow_failure)
    # 10 s + 0.75 + 10 s = 20.75; another 1.5 s wait + attempt would start at 22.25 < 25,
    # then 32.25 + 3.0 > 25: stop.
    assert clock.sleeps == [0.75, 1.5]


@pytest.mark.parametrize(
    "error",
    [
        BrokerNotFound("404"),
        BrokerRejected("422", status=422, code=1, broker_message="no"),
    ],
)
def test_answers_are_not_retried(clock, error):
    fn, calls = _flaky([error])
    with pytest.raises(type(error)):
        _policy(clock).call(fn)
    assert len(calls) == 1 and clock.sleeps == []


def test_retry_warning_names_no_secret(clock, caplog):
    fn, _ = _flaky([BrokerUnavailable("GET /v2/positions -> HTTP 503")])
    with caplog.at_level("WARNING", logger="brokerops.alpaca"):
        _policy(clock).call(fn, what="GET /v2/positions")
    assert "retrying in 0.38s" in caplog.text
