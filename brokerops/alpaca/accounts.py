"""From a configured account (:mod:`brokerops.accounts`) to what the broker door needs to reach
its broker: keys and trading endpoint, the paper broker's when the account has no keys."""

from __future__ import annotations

from typing import NamedTuple

from brokerops.accounts import AccountConfig, configured

from .constants import PAPER_BROKER_KEYS, PAPER_BROKER_URL


class Endpoint(NamedTuple):
    api_key: str
    secret_key: str
    base_url: str | None  # None: alpaca-py's paper or live URL, by ``paper``
    paper: bool


def account_or_default(name: str | None) -> AccountConfig:
    """The configured account called ``name``, or the default account when ``name`` is None.

    :class:`KeyError` names the known accounts for an unknown name; a deployment of several
    accounts without a default must name one (:class:`LookupError`)."""
    accounts = configured()
    if name is not None:
        return accounts.get(name)
    default = accounts.default
    if default is None:
        raise LookupError(
            f"no default account: name one of {', '.join(accounts.names)} "
            "(docs/configuration.md, Accounts)"
        )
    return default


def account_endpoint(account: AccountConfig) -> Endpoint:
    """The keys and trading URL of ``account``: its own, or the built-in paper broker's (at its
    ``base_url`` or ``http://127.0.0.1:8765``) when it has none."""
    if account.api_key and account.secret_key:
        return Endpoint(account.api_key, account.secret_key, account.base_url, account.paper)
    api_key, secret_key = PAPER_BROKER_KEYS
    return Endpoint(api_key, secret_key, account.base_url or PAPER_BROKER_URL, True)
