"""gateway_from_settings: the paper broker when no keys are set, the shared limiter always."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from brokerops.alpaca import (
    PAPER_BROKER_URL,
    InProcessLimiter,
    RedisLimiter,
    gateway_from_settings,
)


@pytest.fixture
def no_keys(settings):
    settings.ALPACA_API_KEY = None
    settings.ALPACA_SECRET_KEY = None
    settings.ALPACA_BASE_URL = None
    settings.REDIS_URL = None
    return settings


def test_no_keys_means_the_paper_broker(no_keys):
    gateway = gateway_from_settings()
    assert gateway.base_url == PAPER_BROKER_URL == "http://127.0.0.1:8765"
    assert gateway.paper and gateway.timeout_s == no_keys.ALPACA_TIMEOUT_S
    assert isinstance(gateway.limiter, InProcessLimiter)
    assert gateway.limiter.rate_per_min == no_keys.ALPACA_RATE_LIMIT_PER_MIN
    # Every gateway of the process shares the one in-process budget.
    assert gateway_from_settings().limiter is gateway.limiter


def test_no_keys_talks_to_the_paper_broker_at_alpaca_base_url(no_keys, broker):
    no_keys.ALPACA_BASE_URL = broker.base_url
    broker.seed_position("AAPL", 3)
    gateway = gateway_from_settings()
    assert [p.symbol for p in gateway.list_positions()] == ["AAPL"]


def test_one_key_without_the_other_is_a_configuration_error(no_keys):
    no_keys.ALPACA_API_KEY = "AKID"
    with pytest.raises(ImproperlyConfigured):
        gateway_from_settings()


def test_real_keys_use_the_configured_endpoint(no_keys):
    no_keys.ALPACA_API_KEY = "AKID"
    no_keys.ALPACA_SECRET_KEY = "shh-secret"
    no_keys.ALPACA_PAPER = False
    gateway = gateway_from_settings()
    assert gateway.base_url is None and gateway.paper is False
    assert "shh-secret" not in repr(gateway) and "AKID" not in repr(gateway)


@pytest.mark.redis
def test_redis_url_gives_the_shared_redis_limiter(no_keys, redis_url):
    no_keys.REDIS_URL = redis_url
    gateway = gateway_from_settings()
    assert isinstance(gateway.limiter, RedisLimiter)
