"""Two accounts, each on a paper broker of its own (docs/design.md section 16): the fixtures the
accounts' reconciliation and fan-out tests share.

A paper broker serves the keys it was given; each account's ``base_url`` points at its own, so
what one account's run reads is that broker's book only. The ACCOUNTS_FILE is written as an
operator would, the keys given as names of environment variables.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from brokerops.accounts import load_accounts
from brokerops.alpaca import broker_gateway
from brokerops.intent.local import LocalSignalStore
from brokerops.sim import PaperBroker

#: name -> (key, secret, client_order_id_prefix)
ACCOUNTS = {
    "desk": ("desk-key", "desk-secret", "dk"),
    "client": ("client-key", "client-secret", "cl"),
}


@dataclass
class TwoAccounts:
    brokers: dict[str, PaperBroker]
    store: LocalSignalStore
    path: Path

    def prefix(self, name: str) -> str:
        return ACCOUNTS[name][2]


def accounts_file(path: Path, base_urls: dict[str, str]) -> str:
    """The TOML an operator writes: ``desk`` is the default account."""
    tables = []
    for name, (_, _, prefix) in ACCOUNTS.items():
        variable = name.upper()
        url = base_urls[name]
        tables.append(
            f"[accounts.{name}]\n"
            f'key_env = "BO_TEST_KEY_{variable}"\n'
            f'secret_env = "BO_TEST_SECRET_{variable}"\n'
            f'base_url = "{url}"\n'
            f'data_url = "{url}"\n'
            f'client_order_id_prefix = "{prefix}"\n'
            f"default = {'true' if name == 'desk' else 'false'}\n"
        )
    path.write_text("\n".join(tables))
    return str(path)


def configure(settings, monkeypatch, path: Path, base_urls: dict[str, str]) -> None:
    """Point the settings at an ACCOUNTS_FILE naming ``base_urls`` (each account's keys in the
    environment), as a deployment starting with it would."""
    for name, (key, secret, _) in ACCOUNTS.items():
        monkeypatch.setenv(f"BO_TEST_KEY_{name.upper()}", key)
        monkeypatch.setenv(f"BO_TEST_SECRET_{name.upper()}", secret)
    settings.ACCOUNTS_FILE = accounts_file(path, base_urls)
    reload_accounts(settings)


def reload_accounts(settings) -> None:
    """Read the ACCOUNTS_FILE again with the environment as it is now (a process starting)."""
    settings.ACCOUNTS = load_accounts(
        settings.ACCOUNTS_FILE, os.environ, rate_limit_per_min=settings.ALPACA_RATE_LIMIT_PER_MIN
    )
    broker_gateway.cache_clear()


@pytest.fixture(name="two_accounts")
def two_accounts_fixture(settings, monkeypatch, tmp_path) -> Iterator[TwoAccounts]:
    """Two configured accounts, ``desk`` (the default) and ``client``, each on its own paper
    broker, and the embedded signal store they share."""
    brokers = {
        name: PaperBroker(default_assets=True, keys={key: secret})
        for name, (key, secret, _) in ACCOUNTS.items()
    }
    for broker in brokers.values():
        broker.start()
    try:
        path = tmp_path / "accounts.toml"
        configure(settings, monkeypatch, path, {n: b.base_url for n, b in brokers.items()})
        yield TwoAccounts(brokers=brokers, store=LocalSignalStore(), path=path)
    finally:
        broker_gateway.cache_clear()
        for broker in brokers.values():
            broker.stop()


def signal(symbol: str, qty, *, account: str | None, status: str = "ACTIVE", **extra) -> dict:
    document = {
        "symbol": symbol,
        "side": "buy",
        "qty": str(qty),
        "order_type": "market",
        "status": status,
        **extra,
    }
    if account is not None:
        document["account"] = account
    return document
