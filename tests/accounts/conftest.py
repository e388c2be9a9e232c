"""Two accounts of one deployment, each at a paper broker of its own (docs/design.md section 16).

The paper broker serves one account per process today, so each account gets a broker of its
own, on a port of its own, reached through the real alpaca-py client: the accounts' file names
the keys' environment variables (set here), and ``settings.ACCOUNTS`` is loaded from it as the
settings would at start. ``two_accounts.names`` is ``("desk", "client")``; ``desk`` is the
default account (signals naming none belong to it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from brokerops.accounts import load_accounts
from brokerops.alpaca import broker_gateway
from brokerops.intent.local import LocalSignalStore
from brokerops.sim import PaperBroker
from tests.ports import free_port

NAMES = ("desk", "client")
PREFIXES = {"desk": "dk", "client": "cl"}
# Each account its own keys: the brokers refuse any other pair (401), as Alpaca does.
KEYS = {name: (f"{name}-key", f"{name}-secret") for name in NAMES}
# The gateways' own budget: far above what a test sends, so no test waits on its limiter (the
# Redis buckets are per key and outlive a test).
RATE_LIMIT_PER_MIN = 20_000


def pending(symbol="AAPL", qty="1", **fields) -> dict:
    """A PENDING market buy (``account=...`` names its account)."""
    return {
        "symbol": symbol,
        "side": "buy",
        "qty": qty,
        "order_type": "market",
        "status": "PENDING",
        **fields,
    }


@pytest.fixture
def store() -> LocalSignalStore:
    return LocalSignalStore()


def key_variables(name: str) -> tuple[str, str]:
    """The names of the environment variables holding the account's key and secret."""
    upper = name.upper()
    return f"BO_TEST_KEY_{upper}", f"BO_TEST_SECRET_{upper}"


@dataclass
class TwoAccounts:
    """Both accounts: their brokers, prefixes, the accounts' file and its environment."""

    brokers: dict[str, PaperBroker]
    path: Path
    settings: object
    monkeypatch: pytest.MonkeyPatch
    names: tuple[str, str] = NAMES
    prefixes: dict[str, str] = field(default_factory=lambda: dict(PREFIXES))

    def broker(self, name: str) -> PaperBroker:
        return self.brokers[name]

    def coid(self, name: str, signal_id: str) -> str:
        """The client_order_id account ``name`` gives signal ``signal_id``."""
        return f"{self.prefixes[name]}-{signal_id}-entry"

    def coids_at(self, name: str) -> set[str]:
        """The client_order_ids of every order at account ``name``'s broker."""
        return {str(o["client_order_id"]) for o in self.brokers[name].orders()}

    def env(self) -> dict[str, str]:
        """The variables a command started as a process needs (the file and the keys)."""
        env = {"ACCOUNTS_FILE": str(self.path)}
        for name in self.names:
            key_var, secret_var = key_variables(name)
            env[key_var], env[secret_var] = os.environ[key_var], os.environ[secret_var]
        return env

    def set_secret(self, name: str, secret: str) -> None:
        """Give account ``name`` another secret (a wrong one: its broker answers 401), as a
        restart with a changed environment would."""
        self.monkeypatch.setenv(key_variables(name)[1], secret)
        self.reload()

    def reload(self) -> None:
        self.settings.ACCOUNTS = load_accounts(
            str(self.path), os.environ, rate_limit_per_min=RATE_LIMIT_PER_MIN
        )
        broker_gateway.cache_clear()


def accounts_toml(brokers: dict[str, PaperBroker]) -> str:
    tables = []
    for name, broker in brokers.items():
        key_var, secret_var = key_variables(name)
        tables.append(
            f"[accounts.{name}]\n"
            f'key_env = "{key_var}"\n'
            f'secret_env = "{secret_var}"\n'
            f'base_url = "{broker.base_url}"\n'
            f'data_url = "{broker.base_url}"\n'
            f'stream_url = "{broker.stream_url}"\n'
            f'client_order_id_prefix = "{PREFIXES[name]}"\n'
            f"rate_limit_per_min = {RATE_LIMIT_PER_MIN}\n"
            f"default = {'true' if name == 'desk' else 'false'}\n"
        )
    return "\n".join(tables)


@pytest.fixture
def two_accounts(tmp_path, monkeypatch, settings) -> Iterator[TwoAccounts]:
    """Accounts ``desk`` (the default) and ``client``, each at its own running paper broker
    (a fixed port each: a test may stop one and start it again where the account expects it)."""
    brokers = {
        name: PaperBroker(keys=dict([KEYS[name]]), port=free_port(), default_assets=True)
        for name in NAMES
    }
    for broker in brokers.values():
        broker.start()
    try:
        path = tmp_path / "accounts.toml"
        path.write_text(accounts_toml(brokers))
        for name in NAMES:
            key_var, secret_var = key_variables(name)
            monkeypatch.setenv(key_var, KEYS[name][0])
            monkeypatch.setenv(secret_var, KEYS[name][1])
        settings.ACCOUNTS_FILE = str(path)
        accounts = TwoAccounts(brokers, path, settings, monkeypatch)
        accounts.reload()
        yield accounts
    finally:
        broker_gateway.cache_clear()
        for broker in brokers.values():
            broker.stop()
