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
    settings.ALPACA_DATA_URL = None
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


def test_new_settings_have_their_documented_defaults(no_keys):
    assert no_keys.ALPACA_MAX_PAUSE_S == 65
    assert no_keys.ALPACA_MAX_ORDER_PAGES == 2000
    assert no_keys.ALPACA_DATA_URL is None
    gateway = gateway_from_settings()
    assert gateway.max_pause_s == 65 and gateway.limiter.max_pause_s == 65
    assert gateway.max_order_pages == 2000


def test_the_paper_broker_serves_market_data_on_its_own_port(no_keys, broker):
    no_keys.ALPACA_BASE_URL = broker.base_url
    assert gateway_from_settings().data_url == broker.base_url
    no_keys.ALPACA_BASE_URL = None
    assert gateway_from_settings().data_url == PAPER_BROKER_URL


def test_real_keys_read_market_data_from_alpaca(no_keys):
    no_keys.ALPACA_API_KEY, no_keys.ALPACA_SECRET_KEY = "AKID", "shh"
    assert gateway_from_settings().data_url == "https://data.alpaca.markets"
    no_keys.ALPACA_BASE_URL = "https://proxy.example:8443"  # a trading proxy is not a data proxy
    assert gateway_from_settings().data_url == "https://data.alpaca.markets"
    no_keys.ALPACA_DATA_URL = "https://data-proxy.example/"
    assert gateway_from_settings().data_url == "https://data-proxy.example"


def test_the_caps_come_from_settings(no_keys):
    no_keys.ALPACA_MAX_PAUSE_S = 30
    no_keys.ALPACA_MAX_ORDER_PAGES = 7
    gateway = gateway_from_settings()
    assert gateway.max_pause_s == 30 and gateway.max_order_pages == 7
    assert gateway.limiter.max_pause_s == 30
