"""The demo's two accounts (docs/design.md section 16): the desk and a client, both served by the
demo's one paper broker under keys of their own.

The demo configures itself as a deployment would (docs/configuration.md, Accounts): an
``ACCOUNTS_FILE`` naming each account's keys as environment variables, which this process sets,
loaded once before anything reads the accounts. The desk is the default account (the demo
scenario's signals name none) under the paper broker's built-in keys and the deployment's
``CLIENT_ORDER_ID_PREFIX`` (the scenario's orders carry it); the client's book, keys and signals
are :func:`demo.world.seed_client_account`'s.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

from brokerops.accounts import Accounts, load_accounts
from brokerops.alpaca import broker_gateway
from brokerops.alpaca.constants import PAPER_BROKER_KEYS
from brokerops.sim import PaperBroker
from demo.world import DEMO_CLIENT_ACCOUNT, DEMO_CLIENT_KEYS

#: The desk's account: the default one, the demo scenario's.
DEMO_DESK_ACCOUNT = "desk"
#: The client's client_order_id prefix (its claim space beside the desk's).
DEMO_CLIENT_PREFIX = "cl"


def _table(name: str, broker: PaperBroker, *, prefix: str, default: bool) -> str:
    variable = f"BROKEROPS_DEMO_{name.upper()}"
    return (
        f"[accounts.{name}]\n"
        f'key_env = "{variable}_KEY"\n'
        f'secret_env = "{variable}_SECRET"\n'
        f'base_url = "{broker.base_url}"\n'
        f'data_url = "{broker.base_url}"\n'
        f'stream_url = "{broker.stream_url}"\n'
        f'client_order_id_prefix = "{prefix}"\n'
        f"default = {'true' if default else 'false'}\n"
    )


def configure_demo_accounts(broker: PaperBroker, workdir: Path) -> Accounts:
    """Write the demo's accounts file to ``workdir``, put the keys it names in this process's
    environment and make it this process's configuration (``settings.ACCOUNTS_FILE`` and
    ``settings.ACCOUNTS``, as the settings would load it at start); the gateways built so far
    are dropped. Returns the accounts."""
    keys = {DEMO_DESK_ACCOUNT: PAPER_BROKER_KEYS, DEMO_CLIENT_ACCOUNT: DEMO_CLIENT_KEYS}
    for name, (key, secret) in keys.items():
        os.environ[f"BROKEROPS_DEMO_{name.upper()}_KEY"] = key
        os.environ[f"BROKEROPS_DEMO_{name.upper()}_SECRET"] = secret
    path = workdir / "accounts.toml"
    tables = (
        _table(DEMO_DESK_ACCOUNT, broker, prefix=settings.CLIENT_ORDER_ID_PREFIX, default=True),
        _table(DEMO_CLIENT_ACCOUNT, broker, prefix=DEMO_CLIENT_PREFIX, default=False),
    )
    path.write_text("\n".join(tables))
    settings.ACCOUNTS_FILE = str(path)
    settings.ACCOUNTS = load_accounts(
        str(path), os.environ, rate_limit_per_min=settings.ALPACA_RATE_LIMIT_PER_MIN
    )
    broker_gateway.cache_clear()
    return settings.ACCOUNTS
