"""The broker boundary's fixed values, importable without loading the gateway (alpaca-py)."""

#: Credentials the built-in paper broker (``brokerops.sim``) accepts; used when no keys are set.
PAPER_BROKER_KEYS = ("test-key", "test-secret")
PAPER_BROKER_URL = "http://127.0.0.1:8765"
DEFAULT_DATA_URL = "https://data.alpaca.markets"
#: ``ALPACA_MAX_ORDER_PAGES``: a paged orders read longer than this fails (1,000,000 orders at 500).
DEFAULT_MAX_ORDER_PAGES = 2000
#: Longest execution id a fill may carry (Alpaca's are UUIDs, 36 characters): the width of the
#: column that records each execution once (``orders.OrderExecution.execution_id``).
MAX_EXECUTION_ID = 64
#: A read of account activities stops (incomplete, the reason recorded) after this many pages;
#: the next read goes on from its cursor (200,000 activities at 100 a page).
DEFAULT_MAX_ACTIVITY_PAGES = 2000
#: Alpaca's largest ``page_size`` for ``GET /v2/account/activities`` (when no ``date`` is given).
MAX_ACTIVITY_PAGE_SIZE = 100
