"""Every real Alpaca payload in tests/alpaca/corpus parses (docs/design.md section 6): through
the parsers, and through the gateway over HTTP where the gateway reads that body."""

import json
from decimal import Decimal
from pathlib import Path

import pytest

from brokerops.alpaca import BrokerNotFound, BrokerRejected
from brokerops.alpaca.errors import map_http_error
from brokerops.alpaca.parsing import (
    parse_account,
    parse_activities,
    parse_asset,
    parse_order,
    parse_order_summaries,
    parse_orders,
    parse_positions,
)
from brokerops.alpaca.retry import NO_RETRY

CORPUS = Path(__file__).parent / "corpus"
FILES = sorted(CORPUS.glob("*.json"))


def load(path: Path) -> tuple[dict, object]:
    """The file's own keys (``_source``, ``_kind``, ...) and the body as Alpaca sent it."""
    doc = json.loads(path.read_text())
    meta = {key: doc.pop(key) for key in list(doc) if key.startswith("_")}
    body = doc.pop("body")
    assert not doc, f"{path.name}: unexpected keys {sorted(doc)}"
    for key in meta.get("_at", ()):
        body = body[key]
    return meta, body


def test_the_corpus_covers_every_read():
    kinds = {load(path)[0]["_kind"] for path in FILES}
    assert {"positions", "order", "orders", "account", "assets", "error", "activities"} <= kinds


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_file_names_its_source(path):
    source = load(path)[0]["_source"]
    assert source.get("url", "").startswith("https://") or (
        source["repository"] and source["path"] and len(source["commit"]) == 40
    )


def _error(status: int, body: object):
    return map_http_error(
        method="GET", path="/v2/x", status=status, body_text=json.dumps(body), headers={}
    )


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_payload_parses(path):
    meta, body = load(path)
    kind = meta["_kind"]
    if kind == "positions":
        assert parse_positions(body)
    elif kind == "order":
        assert parse_order(body).id == body["id"]
        assert parse_order_summaries([body])[0][0].id == body["id"]
    elif kind == "orders":
        assert len(parse_orders(body)) == len(body)
        assert len(parse_order_summaries(body)[0]) == len(body)
    elif kind == "account":
        assert parse_account(body).id == body["id"]
    elif kind == "assets":
        assert [parse_asset(row).symbol for row in body] == [row["symbol"] for row in body]
    elif kind == "close_positions":
        for entry in body:
            if entry["status"] == 200:
                assert parse_order(entry["body"]).symbol == entry["symbol"].replace("USD", "/USD")
            else:
                error = _error(entry["status"], entry["body"])
                assert isinstance(error, BrokerRejected) and error.code == entry["body"]["code"]
    elif kind == "activities":
        activities = parse_activities(body)
        assert [a.id for a in activities] == [row.get("id") or row["ref_id"] for row in body]
        assert [a.activity_type for a in activities] == [row["activity_type"] for row in body]
    elif kind == "error":
        error = _error(meta["_status"], body)
        assert not isinstance(error, BrokerNotFound) and str(error)
    else:
        pytest.fail(f"{path.name}: unknown kind {kind!r}")


def test_the_many_decimal_figures_read_exactly():
    _, body = load(CORPUS / "alpaca-py_broker_all_accounts_positions.json")
    (position,) = parse_positions(body)
    assert position.avg_entry_price == Decimal("286.9749783265074366")
    assert position.qty == Decimal("0.173011547")
    _, body = load(CORPUS / "alpaca-py_broker_close_all_positions.json")
    assert parse_order(body[0]["body"]).qty == Decimal("0.0283")


@pytest.fixture
def over(make_gateway, scripted):
    def make():
        return make_gateway(base_url=scripted.url, retry_policy=NO_RETRY)

    return make


READS = [
    ("alpaca-py_positions_list.json", "/v2/positions", "list_positions"),
    ("alpaca-py_broker_all_accounts_positions.json", "/v2/positions", "list_positions"),
    ("alpaca-py_account.json", "/v2/account", "get_account"),
    ("alpaca-py_orders_list.json", "/v2/orders", "list_orders"),
]


@pytest.mark.parametrize(("name", "endpoint", "read"), READS)
def test_the_gateway_reads_each_payload_over_http(over, scripted, name, endpoint, read):
    _, body = load(CORPUS / name)
    scripted.answer("GET", endpoint, (200, body))
    assert getattr(over(), read)()
