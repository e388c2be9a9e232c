"""Which account a piece of order work is for (docs/design.md section 16).

Every service of the order path takes ``account: str | None`` (None: the default account; an
unknown name fails with :class:`KeyError` naming the known ones) and works in that account
alone: its PENDING signals (`AccountScope`), its claim space (its ``client_order_id_prefix``),
its attempts (``OrderAttempt.account``), its gateway and its single-flight locks.
"""

from __future__ import annotations

from brokerops.accounts import AccountConfig, configured
from brokerops.alpaca.accounts import account_or_default
from brokerops.intent.store import AccountScope

#: The single-flight locks of an account's order cycle and sync: ``f"{name}:{account}"``.
SUBMIT_LOCK = "orders-submit"
SYNC_LOCK = "orders-sync"


def account_config(account: str | None) -> AccountConfig:
    """The configured account ``account``, or the default account for None."""
    return account_or_default(account)


def account_names() -> list[str]:
    """Every configured account, in the file's order."""
    return configured().names


def account_scope(account: str | None) -> AccountScope:
    """The signals the order work of ``account`` (the default account for None) reads."""
    return AccountScope.of(account_config(account).name)


def account_lock(name: str, account: str) -> str:
    """The name of ``account``'s single-flight lock ``name`` (one account's runs never overlap;
    another account's never wait for them)."""
    return f"{name}:{account}"
