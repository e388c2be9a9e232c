"""Fixtures for the ledger's tests: the paper broker and the scripted server of the gateway
tests, and Alpaca-shaped activity bodies."""

import pytest

from tests.alpaca import conftest as alpaca

# The gateway tests' fixtures: the paper broker, gateways over it, the scripted server.
broker, clock, make_gateway, scripted = (
    alpaca.broker,
    alpaca.clock,
    alpaca.make_gateway,
    alpaca.scripted,
)

PATH = "/v2/account/activities"


def activity(n: int, **fields) -> dict:
    """A fill activity as Alpaca's list sends it, its id the n-th in booking order."""
    return {
        "id": f"20260105{n:09d}::00000000-0000-4000-8000-{n:012d}",
        "activity_type": "FILL",
        "type": "fill",
        "transaction_time": "2026-01-05T14:30:00.123456Z",
        "qty": "1",
        "price": "10",
        "side": "buy",
        "symbol": "AAPL",
        "order_id": f"order-{n}",
        **fields,
    }


class Pages:
    """Serves ``rows`` as Alpaca pages them ascending (after ``page_token``); ``fail_after``:
    the call number from which it answers 503 (a broker going down mid-read)."""

    def __init__(self, rows, fail_after: int | None = None):
        self.rows, self.fail_after, self.served = rows, fail_after, 0

    def __call__(self, query):
        self.served += 1
        if self.fail_after is not None and self.served > self.fail_after:
            return 503, {"message": "down"}
        size = int(query["page_size"])
        token = query.get("page_token")
        ids = [row["id"] for row in self.rows]
        start = 0 if token is None else ids.index(token) + 1
        return 200, self.rows[start : start + size]


@pytest.fixture
def over_scripted(make_gateway, scripted):
    """A gateway over the scripted server, no retries (a failure is raised at once)."""
    from brokerops.alpaca.retry import NO_RETRY

    return make_gateway(base_url=scripted.url, retry_policy=NO_RETRY)
