"""The gateway's reads of positions, assets and the account."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

from ..parsing.account import parse_account, parse_asset
from ..parsing.positions import parse_position, parse_positions
from ..parsing.values import require_list
from ..types import Account, Asset, Position, symbol_key
from .session import GatewayCalls

DEFAULT_ASSETS_TTL_S = 300.0


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


class AccountReads(GatewayCalls):
    """Positions (never cached), the asset list (cached for ``assets_ttl_s``) and the account."""

    _clock: Callable[[], float]
    _assets_ttl_s: float
    _assets_lock: threading.Lock
    _assets: tuple[tuple[Asset, ...], dict[str, Asset], float] | None

    def list_positions(self) -> list[Position]:
        """All open positions: one ``GET /v2/positions``. Two positions for one symbol (by
        symbol key) raise :class:`BrokerMalformedResponse`, never a sum."""
        return self._read(
            "/v2/positions", lambda: parse_positions(self._client.get_all_positions())
        )

    def get_position(self, symbol_or_asset_id: str | uuid.UUID) -> Position:
        """One position by symbol (any form: ``BTC/USD`` is sent as ``BTCUSD``) or asset id.
        Raises :class:`BrokerNotFound` when there is none."""
        text = str(symbol_or_asset_id)
        ident = text if _is_uuid(text) else symbol_key(text)
        if not ident:
            raise ValueError("symbol_or_asset_id is required")
        return self._read(
            f"/v2/positions/{ident}",
            lambda: parse_position(self._client.get_open_position(ident)),
        )

    def list_assets(self, *, refresh: bool = False) -> tuple[Asset, ...]:
        """All assets: one ``GET /v2/assets``, cached for ``assets_ttl_s``."""
        return self._asset_cache(refresh=refresh)[0]

    def find_asset(self, symbol: str) -> Asset | None:
        """The asset for ``symbol`` (any form) from the cached bulk list; ``None`` if unknown."""
        return self._asset_cache(refresh=False)[1].get(symbol_key(symbol))

    def _asset_cache(self, *, refresh: bool) -> tuple[tuple[Asset, ...], dict[str, Asset]]:
        with self._assets_lock:
            cached = self._assets
            if cached is not None and not refresh:
                assets, by_key, fetched_at = cached
                if self._clock() - fetched_at < self._assets_ttl_s:
                    return assets, by_key

            def fetch() -> tuple[Asset, ...]:
                rows = require_list(self._client.get_all_assets(), "assets")
                return tuple(parse_asset(row) for row in rows)

            assets = self._read("/v2/assets", fetch)
            by_key = {asset.symbol_key: asset for asset in assets}
            self._assets = (assets, by_key, self._clock())
            return assets, by_key

    def get_account(self) -> Account:
        return self._read("/v2/account", lambda: parse_account(self._client.get_account()))
