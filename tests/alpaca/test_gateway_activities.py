"""The gateway's incremental read of account activities (docs/design.md section 18) against a
scripted Alpaca: ascending, 100 a page, the cursor on the last id, one counted call a page, and
a page that repeats or goes backwards stopping the read with its reason, never a loop."""

import pytest

from brokerops.alpaca import BrokerMalformedResponse, BrokerUnavailable
from brokerops.alpaca.retry import NO_RETRY

PATH = "/v2/account/activities"


def activity(n: int, **fields) -> dict:
    return {
        "id": f"20260105{n:09d}::00000000-0000-4000-8000-{n:012d}",
        "activity_type": "FILL",
        "type": "fill",
        "qty": "1",
        "price": "10",
        "side": "buy",
        "symbol": "AAPL",
        **fields,
    }


def ids(rows) -> list[str]:
    return [row["id"] if isinstance(row, dict) else row.id for row in rows]


class Pages:
    """Serves ``rows`` the way Alpaca pages them ascending: after ``page_token``."""

    def __init__(self, rows):
        self.rows = rows

    def __call__(self, query):
        size = int(query["page_size"])
        token = query.get("page_token")
        start = 0 if token is None else ids(self.rows).index(token) + 1
        return 200, self.rows[start : start + size]


@pytest.fixture
def over(make_gateway, scripted):
    return make_gateway(base_url=scripted.url, retry_policy=NO_RETRY)


def test_reads_every_page_ascending_with_the_cursor(over, scripted):
    rows = [activity(n) for n in range(250)]
    scripted.answer("GET", PATH, Pages(rows))
    with over.count_calls() as calls:
        read = over.read_activities()
    assert ids(read.activities) == ids(rows)
    assert (read.complete, read.stop_reason, read.pages, calls.total) == (True, None, 3, 3)
    assert read.last_id == rows[-1]["id"]
    queries = scripted.calls("GET", PATH)
    assert [q.get("page_token") for q in queries] == [None, rows[99]["id"], rows[199]["id"]]
    assert all(q["direction"] == "asc" and q["page_size"] == "100" for q in queries)


def test_an_exact_multiple_ends_on_an_empty_page(over, scripted):
    scripted.answer("GET", PATH, Pages([activity(n) for n in range(200)]))
    read = over.read_activities()
    assert (len(read.activities), read.pages, read.complete) == (200, 3, True)


def test_starts_after_the_given_id_and_keeps_it_when_nothing_is_new(over, scripted):
    rows = [activity(n) for n in range(5)]
    scripted.answer("GET", PATH, Pages(rows))
    read = over.read_activities(after_id=rows[2]["id"])
    assert ids(read.activities) == ids(rows[3:])
    caught_up = over.read_activities(after_id=rows[-1]["id"])
    assert (caught_up.activities, caught_up.last_id, caught_up.complete) == (
        [],
        rows[-1]["id"],
        True,
    )


def test_each_page_is_handed_over_before_the_next_is_asked_for(over, scripted):
    rows = [activity(n) for n in range(150)]
    scripted.answer("GET", PATH, Pages(rows))
    handed = []
    over.read_activities(on_page=lambda page: handed.append((len(scripted.hits), len(page))))
    assert handed == [(1, 100), (2, 50)]


def test_a_page_that_repeats_stops_the_read_with_the_reason(over, scripted):
    first = [activity(n) for n in range(100)]
    scripted.answer(
        "GET", PATH, (200, first), (200, first[50:] + [activity(100 + n) for n in range(50)])
    )
    read = over.read_activities()
    assert ids(read.activities) == ids(first)  # the good page is kept, the bad one is not
    assert not read.complete and read.last_id == first[-1]["id"]
    assert f"page 2 repeats activity {first[50]['id']}" in read.stop_reason
    assert read.pages == 2


def test_a_broker_ignoring_the_cursor_never_loops(over, scripted):
    scripted.answer("GET", PATH, (200, [activity(n) for n in range(100)]))  # the same page forever
    read = over.read_activities()
    assert read.pages == 2 and "repeats" in read.stop_reason


def test_a_page_going_backwards_stops_the_read(over, scripted):
    first = [activity(n) for n in range(100, 200)]
    scripted.answer("GET", PATH, (200, first), (200, [activity(5)]))
    read = over.read_activities()
    assert "page 2 goes backwards" in read.stop_reason and len(read.activities) == 100
    scripted.answer("GET", PATH, (200, [activity(2), activity(1)]))
    out_of_order = over.read_activities()
    assert "page 1 goes backwards" in out_of_order.stop_reason and out_of_order.activities == []


def test_the_page_bound_stops_an_endless_list(over, scripted):
    rows = [activity(n) for n in range(1000)]
    scripted.answer("GET", PATH, Pages(rows))
    read = over.read_activities(max_pages=3)
    assert (len(read.activities), read.complete) == (300, False)
    assert "stopped after 3 pages" in read.stop_reason
    rest = over.read_activities(after_id=read.last_id)
    assert ids(read.activities + rest.activities) == ids(rows) and rest.complete


def test_unknown_types_and_long_decimals_read_and_types_filter(over, scripted):
    rows = [activity(1, activity_type="ZZNEW", qty="0.0000000001234")]
    scripted.answer("GET", PATH, (200, rows))
    (only,) = over.read_activities(activity_types=["fill", "zznew"]).activities
    assert (only.family, str(only.qty)) == ("OTHER", "1.234E-10")
    assert scripted.calls("GET", PATH)[0]["activity_types"] == "FILL,ZZNEW"


def test_a_malformed_or_failed_page_raises_the_broker_error(over, scripted):
    scripted.answer("GET", PATH, (200, [{"activity_type": "FILL"}]))
    with pytest.raises(BrokerMalformedResponse):
        over.read_activities()
    scripted.answer("GET", PATH, (503, {"message": "down"}))
    with pytest.raises(BrokerUnavailable):
        over.read_activities()


def test_bad_arguments_are_refused(over):
    with pytest.raises(ValueError, match="page_size"):
        over.read_activities(page_size=101)
    with pytest.raises(ValueError, match="max_pages"):
        over.read_activities(max_pages=0)


def test_keep_false_hands_the_pages_over_and_holds_none(over, scripted):
    rows = [activity(n) for n in range(150)]
    scripted.answer("GET", PATH, Pages(rows))
    handed = []
    read = over.read_activities(on_page=handed.extend, keep=False)
    assert ids(handed) == ids(rows) and read.activities == []
    assert (read.last_id, read.pages, read.complete) == (rows[-1]["id"], 2, True)
