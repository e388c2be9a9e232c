"""`orders.services.outcomes`: what an order cycle reports, one outcome per signal and the
cycle's counts (the commands print them as JSON)."""

from orders.services.outcomes import Outcome, SignalOutcome, SubmitResult


def test_an_outcome_reads_as_the_commands_print_it():
    outcome = SignalOutcome("s1", "bo-s1-entry", Outcome.SUBMITTED, "accepted", "o-1")
    assert outcome.as_dict() == {
        "signal_id": "s1",
        "client_order_id": "bo-s1-entry",
        "outcome": "submitted",
        "reason": "accepted",
        "alpaca_order_id": "o-1",
    }
    assert outcome.halts_cycle is False


def test_the_counts_say_how_many_signals_ended_each_way_sorted_by_outcome():
    result = SubmitResult(
        outcomes=[
            SignalOutcome("a", "bo-a-entry", Outcome.SUBMITTED),
            SignalOutcome("b", "bo-b-entry", Outcome.REJECTED, "no"),
            SignalOutcome("c", "bo-c-entry", Outcome.SUBMITTED),
            SignalOutcome("d", "bo-d-entry", Outcome.BUSY),
        ],
        invalid_signals=1,
        api_calls=7,
    )
    counts = result.counts()
    assert counts == {
        "signals": 4,
        "invalid_signals": 1,
        "api_calls": 7,
        "busy": 1,
        "rejected": 1,
        "submitted": 2,
    }
    assert list(counts)[3:] == ["busy", "rejected", "submitted"]


def test_an_empty_cycle_counts_nothing_but_its_calls():
    assert SubmitResult(api_calls=2).counts() == {
        "signals": 0,
        "invalid_signals": 0,
        "api_calls": 2,
    }


def test_every_outcome_has_its_own_lower_case_name():
    """As the commands print them and the metrics label them (tests/ops/test_metrics.py checks
    the metrics know each one)."""
    names = [str(outcome) for outcome in Outcome]
    assert names == [outcome.value for outcome in Outcome]
    assert all(name == name.lower() for name in names) and len(set(names)) == len(names)
