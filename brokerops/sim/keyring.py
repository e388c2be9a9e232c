"""The accounts the paper broker serves and the API keys that open them (docs/design.md section
16).

Each account (:class:`PaperAccount`) has its own book (positions, orders, cash), its own HTTP
faults and trade_updates stream faults, its own thread releasing its delayed orders, and maybe a
rate budget of its own; the market is one for all (``venue.py``). An API key opens exactly one
account: a request (``APCA-API-KEY-ID``/``APCA-API-SECRET-KEY``) or a stream ``auth`` is routed
to its key's account, and a key another account holds is refused (two accounts on one key would
fight over its stream connection, as they would at Alpaca). An account may have several keys;
each key still has its own rate-limit window.
"""

from __future__ import annotations

import threading

from .book import Book
from .faults import FaultInjector, StreamFaultInjector
from .scheduler import FillScheduler


class PaperAccount:
    """One account's state. ``rate_limit_per_min``: its own budget per window for each of its
    keys (None: the broker's)."""

    def __init__(
        self,
        *,
        name: str,
        book: Book,
        faults: FaultInjector,
        stream_injector: StreamFaultInjector,
        rate_limit_per_min: int | None = None,
    ) -> None:
        if rate_limit_per_min is not None and rate_limit_per_min < 1:
            raise ValueError("rate_limit_per_min must be at least 1 (None: the broker's)")
        self.name = name
        self.book = book
        self.faults = faults
        self.stream_injector = stream_injector
        self.rate_limit_per_min = rate_limit_per_min
        self.fills = FillScheduler(book, name=f"paper-broker-fills-{name}")

    def __repr__(self) -> str:
        return f"<PaperAccount {self.name}>"


class Keyring:
    """Which account each API key opens; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: dict[str, str] = {}
        self._owners: dict[str, PaperAccount] = {}
        self._accounts: list[PaperAccount] = []

    def add_account(self, account: PaperAccount, keys: dict[str, str]) -> None:
        """Serve ``account`` under ``keys`` (key id -> secret, at least one, none of them
        another account's)."""
        if not keys:
            raise ValueError(f"account {account.name} needs an API key")
        with self._lock:
            self._refuse_taken(account, keys)
            if any(a.name == account.name for a in self._accounts):
                raise ValueError(f"an account is already named {account.name!r}")
            self._accounts.append(account)
            self._grant(account, keys)

    def add_key(self, account: PaperAccount, key_id: str, secret: str) -> None:
        """Another key of ``account`` (or a new secret for one of its keys)."""
        with self._lock:
            self._refuse_taken(account, {key_id: secret})
            self._grant(account, {key_id: secret})

    def revoke_key(self, key_id: str) -> None:
        """``key_id`` opens nothing any more (its requests get 401, as Alpaca answers a key
        revoked on its dashboard); its account keeps its book."""
        with self._lock:
            self._secrets.pop(key_id, None)
            self._owners.pop(key_id, None)

    def _refuse_taken(self, account: PaperAccount, keys: dict[str, str]) -> None:
        for key_id in keys:
            owner = self._owners.get(key_id)
            if owner is not None and owner is not account:
                raise ValueError(f"API key {key_id!r} already opens account {owner.name}")

    def _grant(self, account: PaperAccount, keys: dict[str, str]) -> None:
        for key_id, secret in keys.items():
            self._secrets[key_id] = secret
            self._owners[key_id] = account

    def resolve(self, key_id: str, secret: str) -> PaperAccount | None:
        """The account ``key_id`` opens when ``secret`` is its secret; None otherwise."""
        with self._lock:
            if self._secrets.get(key_id) != secret:
                return None
            return self._owners[key_id]

    def owner(self, key_id: str) -> PaperAccount:
        """The account ``key_id`` opens; ``KeyError`` for an unknown key."""
        with self._lock:
            try:
                return self._owners[key_id]
            except KeyError:
                raise KeyError(f"no account has the API key {key_id!r}") from None

    def keys_of(self, account: PaperAccount) -> list[str]:
        with self._lock:
            return sorted(key for key, owner in self._owners.items() if owner is account)

    def first_key(self, account: PaperAccount) -> tuple[str, str]:
        """The key the account was made with and its secret."""
        with self._lock:
            for key, owner in self._owners.items():
                if owner is account:
                    return key, self._secrets[key]
        raise KeyError(f"account {account.name} has no key")

    def accounts(self) -> list[PaperAccount]:
        """Every account, in the order they were added (the broker's own first)."""
        with self._lock:
            return list(self._accounts)
