"""The tests of `orders.services`, one module each: the paper broker over loopback, a gateway over
it through the real alpaca-py client, and each signal store (the fixtures the integration tests
use); the default account the order path serves when none is named (docs/design.md section 16),
as its configuration (``default_account``) and as the scope of its signals (``default_scope``)."""

import pytest

from brokerops.accounts import AccountConfig
from brokerops.intent.store import AccountScope
from orders.services.accounts import account_config, account_scope
from tests.integration.conftest import broker, gateway, store

__all__ = ["broker", "default_account", "default_scope", "gateway", "store"]


@pytest.fixture
def default_account() -> AccountConfig:
    """The default account (the one of the ``ALPACA_*`` settings): its name and its
    client_order_id prefix (``bo``), the claim space the tests' ids are written in."""
    return account_config(None)


@pytest.fixture
def default_scope(default_account: AccountConfig) -> AccountScope:
    """The signals the default account's order work reads (`submit_context_open`'s ``scope``)."""
    return account_scope(default_account.name)
