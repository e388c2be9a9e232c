"""load_signals and list_signals, through `get_signal_store()`, against both stores."""

import json

import pytest
from django.core.management import CommandError, call_command

from brokerops.intent.schema import SignalStatus


def write(tmp_path, content, name="signals.json"):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def run(*args):
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


SIGNALS = [
    {"id": "s1", "symbol": "AAPL", "side": "buy", "qty": 5, "order_type": "market",
     "status": "PENDING"},
    {"id": "s2", "symbol": "BTC/USD", "side": "buy", "notional": "250.00",
     "order_type": "limit", "limit_price": 60000.5, "status": "ACTIVE"},
    {"id": "broken", "symbol": "MSFT", "side": "buy", "qty": -2, "order_type": "market",
     "status": "ACTIVE"},
]  # fmt: skip


def test_load_signals_writes_valid_and_invalid_documents_and_lists_the_invalid(
    configured_signal_store, tmp_path
):
    output = run("load_signals", str(write(tmp_path, SIGNALS)))

    assert "Loaded 3 signal(s)" in output
    assert "2 valid, 1 invalid" in output
    assert "invalid broken: qty must be positive" in output
    stored = configured_signal_store.read_all()
    assert [s.id for s in stored.signals] == ["s1", "s2"]
    assert [i.id for i in stored.invalid] == ["broken"]


def test_load_signals_accepts_an_object_of_id_to_fields_and_replace_clears_first(
    configured_signal_store, tmp_path
):
    run("load_signals", str(write(tmp_path, SIGNALS)))
    by_id = {"only": {k: v for k, v in SIGNALS[0].items() if k != "id"}}

    output = run("load_signals", str(write(tmp_path, by_id, "by_id.json")), "--replace")

    assert "Deleted 3 stored signal(s)" in output
    assert [s.id for s in configured_signal_store.read_all().signals] == ["only"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[{'id': 1,}", "is not valid JSON"),
        ('"just a string"', "expected a list of signals"),
        ('[{"symbol": "AAPL"}]', "entry 0 is not an object with an 'id'"),
        ('[{"id": "a"}, {"id": "a"}]', "appears twice"),
        ('{"a/b": {}}', "not allowed"),
        ('{"a": ["not", "an", "object"]}', "is not an object"),
    ],
)
def test_load_signals_rejects_a_bad_file_and_writes_nothing(
    configured_signal_store, tmp_path, content, message
):
    with pytest.raises(CommandError, match=message):
        run("load_signals", str(write(tmp_path, content)))
    assert len(configured_signal_store.read_all()) == 0


def test_load_signals_reports_an_unreadable_file(configured_signal_store, tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        run("load_signals", str(tmp_path / "missing.json"))


def test_list_signals_prints_json_filtered_by_status(configured_signal_store, tmp_path):
    run("load_signals", str(write(tmp_path, SIGNALS)))

    payload = json.loads(run("list_signals", "--status", "ACTIVE", "--json"))

    assert [s["id"] for s in payload["signals"]] == ["s2"]
    s2 = payload["signals"][0]
    assert (s2["notional"], s2["limit_price"], s2["symbol_key"]) == ("250.00", "60000.5", "BTCUSD")
    assert s2["status"] == SignalStatus.ACTIVE
    assert payload["invalid"][0]["id"] == "broken"
    assert "qty must be positive" in payload["invalid"][0]["reasons"][0]


def test_list_signals_table_lists_everything(configured_signal_store, tmp_path):
    run("load_signals", str(write(tmp_path, SIGNALS)))

    output = run("list_signals")

    assert "s1" in output and "BTC/USD" in output
    assert "2 signal(s), 1 invalid." in output


def test_list_signals_rejects_an_unknown_status(configured_signal_store):
    with pytest.raises(CommandError, match="invalid choice"):
        run("list_signals", "--status", "DONE")
