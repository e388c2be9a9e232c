"""Breaks: what matching a run's findings to breaks adds to the run (docs/design.md section 8 and
17: 10,000 findings against 10,000 open breaks, under 0.5 s).

Records the same 10,000 findings (quantity mismatches on 10,000 symbols) as a run does
(``mismatches_record``: the mismatch rows, their signal rows and, with breaks, the matching in
the same transaction) three ways in one process, and prints each against the same recording
with matching switched off (the run without breaks, the naive baseline of "no cases at all"):

1. first run: 10,000 new keys open 10,000 breaks (with their ``opened`` events);
2. steady state: the same 10,000 found again (seen again: counts and last seen move);
3. all clear: a run that finds nothing resolves 10,000 breaks (with their ``cleared`` events).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/brokerops_bench_breaks \\
    ./dev python tests/benchmarks/breaks_bench.py [--findings 10000]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.benchmarks._support import count_queries, setup_django


@contextmanager
def no_matching():
    with mock.patch("reconciliation.records.breaks_match", lambda **_: None):
        yield


def record(
    findings: int, *, matching: bool, symbols: str, account: str = "bench"
) -> tuple[float, int]:
    from reconciliation.diff import Finding, ReconciliationErrors, Severity
    from reconciliation.plan import PlannedRepair, Verdict
    from reconciliation.records import mismatches_record
    from tests import factories

    planned = [
        PlannedRepair(
            finding=Finding(
                kind=ReconciliationErrors.QTY_MISMATCH,
                severity=Severity.WARNING,
                symbol=f"{symbols}{i:05d}",
                signal_id=f"sig-{symbols}-{i}",
                signal_ids=(f"sig-{symbols}-{i}",),
                expected_qty=Decimal(10),
                actual_qty=Decimal(11),
                detail="net 11 held, 10 expected",
            ),
            verdict=Verdict.FLAG,
        )
        for i in range(findings)
    ]
    run = factories.reconciliation_run(account=account if matching else "baseline")
    with count_queries() as queries:
        started = time.perf_counter()
        if matching:
            mismatches_record(run=run, planned=planned, dry_run=False)
        else:
            with no_matching():
                mismatches_record(run=run, planned=planned, dry_run=False)
        elapsed = time.perf_counter() - started
    return elapsed, queries[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--findings", type=int, default=10_000)
    args = parser.parse_args()
    setup_django("breaks")
    from django.db import connection

    from reconciliation.models import Break

    n = args.findings
    print(f"breaks matching on {connection.vendor}: {n:,} findings")
    record(200, matching=True, symbols="W", account="warm-up")  # imports, connection, plans
    record(200, matching=False, symbols="W")
    cases = [
        ("first run (opens)", "A", n),
        ("steady state (seen again)", "A", n),
        ("all clear (resolves)", "A", 0),
    ]
    added_by_case = {}
    for label, symbols, count in cases:
        base_s, base_q = record(count, matching=False, symbols=symbols)
        with_s, with_q = record(count, matching=True, symbols=symbols)
        added = with_s - base_s
        added_by_case[label] = added
        print(
            f"  {label:27s} without breaks {base_s:6.3f} s ({base_q} queries)  "
            f"with {with_s:6.3f} s ({with_q} queries)  added {added:+.3f} s"
        )
    states = dict(Counter(Break.objects.filter(account="bench").values_list("state", flat=True)))
    print(f"  breaks by state after the three runs: {states}")
    steady = added_by_case["steady state (seen again)"]
    print(f"  the bar (10,000 findings against 10,000 open breaks): {steady:+.3f} s, under 0.5 s")
    opening = added_by_case["first run (opens)"] / max(n, 1) * 1e6
    print(f"  opening costs {opening:.0f} us a break (the row and its chained event)")


if __name__ == "__main__":
    main()
