"""The one form in which symbols are compared, shared by both boundaries.

Alpaca's positions say ``BTCUSD`` where orders and signals say ``BTC/USD``; equities are
upper-case. Both the broker gateway and the signal schema key symbols with :func:`symbol_key`.
"""


def symbol_key(symbol: str) -> str:
    """Upper-case, surrounding whitespace stripped, ``/`` and ``-`` removed.

    ``BTC/USD``, ``btc/usd``, ``BTC-USD`` and Alpaca's position symbol ``BTCUSD`` all give
    ``BTCUSD``; ``aapl`` gives ``AAPL``. Other characters (``BRK.B``) are kept.
    """
    return symbol.strip().upper().replace("/", "").replace("-", "")
