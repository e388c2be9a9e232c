"""Paging the audit lists without counting millions of rows on every page.

Django's admin counts the list (``SELECT COUNT(*)``) to draw its pages; over 1,000,000 attempts
that alone takes longer than the rest of the page. For a list that is neither searched nor
filtered on PostgreSQL, :class:`EstimatedCountPaginator` takes the planner's row estimate
(``pg_class.reltuples`` scaled to the table's current size, as the planner does) and counts
exactly only when that estimate is below a threshold. Searched or filtered lists, and every list
on another database, are counted, but only up to :attr:`EstimatedCountPaginator.count_cap`
matching rows (``COUNT(*)`` over a ``LIMIT`` subquery): a broad search (a symbol over 3,000,000
events) would otherwise count hundreds of thousands of rows, seconds, to print one number. Past
the cap the list says "more than N"; the export still takes every row.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

# The planner's estimate of a table's rows: reltuples (from the last ANALYZE or VACUUM) per page,
# times the pages the table has now. NULL when the table was never analysed (reltuples < 0).
ESTIMATE_SQL = """
SELECT CASE
    WHEN c.reltuples < 0 THEN NULL
    WHEN c.relpages = 0 THEN c.reltuples
    ELSE c.reltuples / c.relpages
        * (pg_relation_size(c.oid) / current_setting('block_size')::integer)
END
FROM pg_class c
WHERE c.oid = to_regclass(%s)
"""


def queryset_is_whole_table(queryset: QuerySet) -> bool:
    """True when ``queryset`` counts every row of its table (no filter, search, distinct,
    grouping, slice or union), so the table's row estimate stands for its count."""
    query = queryset.query
    return not (
        query.where
        or query.distinct
        or query.combinator
        or query.is_sliced
        or query.group_by is not None
    )


def table_row_estimate(queryset: QuerySet) -> int | None:
    """PostgreSQL's estimate of the rows in ``queryset``'s table; None elsewhere or when the
    table was never analysed."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    table = connection.ops.quote_name(queryset.model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(ESTIMATE_SQL, [table])
        row = cursor.fetchone()
    if row is None or row[0] is None:
        return None
    return max(0, round(row[0]))


class EstimatedCountPaginator(Paginator):
    """A paginator whose count of a whole big PostgreSQL table is the planner's estimate.

    ``count_is_estimate`` says which it is (the pagination template writes "about");
    ``count_is_capped`` says a searched or filtered list has more than ``count_cap`` rows (its
    count is then ``count_cap + 1``, its pages stop there).
    """

    # Below this many rows an exact count is cheap (a few milliseconds) and worth having.
    exact_count_below = 100_000
    # A searched or filtered list is counted up to this many rows (20 pages of 50): counting
    # 10,000 events of one symbol through their attempts took ~100 ms at 3,000,000 events.
    count_cap = 1_000

    def __init__(
        self,
        *args,
        exact_count_below: int | None = None,
        count_cap: int | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        if exact_count_below is not None:
            self.exact_count_below = exact_count_below
        if count_cap is not None:
            self.count_cap = count_cap
        self.count_is_estimate = False
        self.count_is_capped = False

    @property
    def count_cap_display(self) -> str:
        """The cap as people read it ("1,000")."""
        return f"{self.count_cap:,}"

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if isinstance(queryset, QuerySet) and queryset_is_whole_table(queryset):
            estimate = table_row_estimate(queryset)
            if estimate is not None and estimate >= self.exact_count_below:
                self.count_is_estimate = True
                return estimate
        if isinstance(queryset, QuerySet) and not queryset.query.is_sliced:
            count = queryset[: self.count_cap + 1].count()
            self.count_is_capped = count > self.count_cap
            return count
        return super().count
