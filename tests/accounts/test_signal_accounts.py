"""A signal names its account; the store's reads are kept to one account (docs/design.md
section 16): absent means the default account, unknown means invalid (reported once)."""

import pytest

from brokerops.accounts import AccountConfig, Accounts
from brokerops.intent.schema import InvalidSignal, Signal, parse_signal
from brokerops.intent.store import AccountScope, SignalRead

BASE = {"symbol": "AAPL", "side": "buy", "qty": "1", "order_type": "market", "status": "PENDING"}


def accounts(default: str | None = "desk") -> Accounts:
    names = ["desk", "client"]
    return Accounts(
        {
            n: AccountConfig(
                name=n, client_order_id_prefix=n[:2], rate_limit_per_min=200, default=n == default
            )
            for n in names
        }
    )


def doc(signal_id: str, **fields):
    return parse_signal(signal_id, {**BASE, **fields})


def test_the_account_field_is_parsed_and_checked():
    assert doc("a").account is None
    assert doc("b", account="").account is None
    assert doc("c", account="client").account == "client"
    bad = doc("d", account="Client A")
    assert isinstance(bad, InvalidSignal)
    assert bad.reasons == ("account 'Client A' is not an account name (1-32 of a-z, 0-9, '-')",)
    assert isinstance(doc("e", account=7), InvalidSignal)


def read_of(*items) -> SignalRead:
    return SignalRead(
        signals=[i for i in items if isinstance(i, Signal)],
        invalid=[i for i in items if isinstance(i, InvalidSignal)],
    )


def test_each_account_reads_its_own_and_the_default_reads_the_unnamed():
    read = read_of(
        doc("1"),
        doc("2", account="desk"),
        doc("3", account="client"),
        doc("4", account="ghost"),
        parse_signal("5", {**BASE, "qty": "x", "account": "client"}),
    )
    desk = AccountScope("desk", accounts()).select(read)
    client = AccountScope("client", accounts()).select(read)
    assert [s.id for s in desk.signals] == ["1", "2"]
    assert [s.id for s in client.signals] == ["3"]
    assert [s.id for s in client.invalid] == ["5"]  # a broken document of its own
    # The signal of an unknown account is nobody's: the default account reports it, as invalid.
    assert [(s.id, s.reasons) for s in desk.invalid] == [
        ("4", ("account 'ghost' is not configured (accounts: desk, client)",))
    ]


def test_without_a_default_an_unnamed_signal_is_invalid_in_the_first_account():
    read = read_of(doc("1"), doc("2", account="client"))
    desk = AccountScope("desk", accounts(default=None)).select(read)
    client = AccountScope("client", accounts(default=None)).select(read)
    assert desk.signals == [] and [s.id for s in client.signals] == ["2"]
    assert desk.invalid[0].reasons == ("names no account and there is no default account",)
    assert client.invalid == []


def test_a_scope_is_of_a_configured_account(settings):
    assert AccountScope.of("default").name == "default"
    with pytest.raises(KeyError, match="no account 'desk'"):
        AccountScope.of("desk")


DOCS = {
    "n-1": {},
    "n-2": {"account": ""},
    "d-1": {"account": "desk"},
    "c-1": {"account": "client"},
    "c-bad": {"account": "client", "qty": "x"},
    "g-1": {"account": "ghost"},
    "t-1": {"account": 5},
    "l-1": {"account": "c" * 120},
    "closed": {"account": "client", "status": "CLOSED"},
    "odd-status": {"account": "client", "status": "pending?"},
}


@pytest.mark.django_db
@pytest.mark.parametrize("default", ["desk", "client", None])
@pytest.mark.parametrize("unknown", [False, True])
def test_the_local_store_reads_one_account_by_its_column_as_the_scope_selects(
    settings, default, unknown
):
    """The indexed read gives exactly what the scope keeps of a whole read, whichever account
    is the default (or none is) and whoever reports the unowned."""
    from brokerops.intent.local import LocalSignalStore

    store = LocalSignalStore()
    store.put_documents((i, {**BASE, **fields}) for i, fields in DOCS.items())
    statuses = {"PENDING", "ACTIVE"}
    for name in ("desk", "client"):
        scope = AccountScope(name, accounts(default=default))
        whole = store.read(statuses=statuses, include_unknown_status=unknown)
        assert store.read_for(scope, statuses=statuses, include_unknown_status=unknown) == (
            scope.select(whole)
        )


@pytest.mark.django_db
def test_the_account_column_follows_the_document(settings):
    from brokerops.intent.local import LocalSignalStore
    from brokerops.intent.models import LocalSignal

    store = LocalSignalStore()
    store.put_documents([("a", {**BASE, "account": "desk"}), ("b", BASE)])
    assert dict(LocalSignal.objects.values_list("document_id", "account")) == {
        "a": "desk",
        "b": None,
    }
    store.put_documents([("a", {**BASE, "account": "client"})])
    assert LocalSignal.objects.get(document_id="a").account == "client"
