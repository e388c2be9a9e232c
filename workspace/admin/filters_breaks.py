"""The open breaks list's filters (docs/design.md section 17): state (the live ones unless asked
otherwise), age, due, owner and occurrences; kind, severity, account and the seen dates use the
house filters (:mod:`workspace.filters`)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from reconciliation.ageing import AGE_BUCKETS, age_bucket_q, overdue_q
from reconciliation.breaks import LIVE
from reconciliation.models import Break
from workspace.filters import accounts_present

State = Break.State


class BreakStateFilter(admin.SimpleListFilter):
    """The live breaks (open, acknowledged, proposed) by default: the list is a to-do list. Also
    each state, the repairs to review, and every break."""

    title = "state"
    parameter_name = "state"
    LIVE_CHOICE = "live"
    REVIEW = "review"
    ALL = "all"

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        return [
            *((s.value, s.label) for s in State),
            (self.REVIEW, "Repaired, to review"),
            (self.ALL, "All"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value() or self.LIVE_CHOICE
        if value == self.ALL:
            return queryset
        if value == self.REVIEW:
            return queryset.filter(needs_review=True)
        if value == self.LIVE_CHOICE or value not in State.values:
            return queryset.filter(state__in=sorted(LIVE))
        return queryset.filter(state=value)

    def choices(self, changelist):
        """ "Live" first and chosen when nothing is, then each state, the review list and all."""
        current = self.value() or self.LIVE_CHOICE
        yield {
            "selected": current == self.LIVE_CHOICE,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "Live (open, acknowledged, proposed)",
        }
        for value, label in self.lookup_choices:
            yield {
                "selected": current == value,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": label,
            }


class _BucketFilter(admin.SimpleListFilter):
    """A filter whose choices are named conditions (``buckets``: value -> (label, Q factory))."""

    buckets: dict = {}

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        return [(value, label) for value, (label, _) in self.buckets.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        bucket = self.buckets.get(self.value())
        if bucket is None:
            return queryset
        return queryset.filter(bucket[1](timezone.now()))


HOUR, DAY = timedelta(hours=1), timedelta(days=1)


class AgeFilter(_BucketFilter):
    """The age buckets of section 17 (reconciliation.ageing), on the current episode."""

    title = "age"
    parameter_name = "age"
    buckets = {
        b.key: (b.label.capitalize(), lambda now, key=b.key: age_bucket_q(key, now))
        for b in AGE_BUCKETS
    }


class DueFilter(_BucketFilter):
    title = "due"
    parameter_name = "due"
    buckets = {
        "overdue": ("Overdue", overdue_q),
        "day": (
            "Due within a day",
            lambda now: Q(state__in=sorted(LIVE), due_at__gt=now, due_at__lte=now + DAY),
        ),
        "later": ("Due later", lambda now: Q(state__in=sorted(LIVE), due_at__gt=now + DAY)),
    }


class OccurrencesFilter(_BucketFilter):
    title = "occurrences"
    parameter_name = "seen"
    buckets = {
        "once": ("Found by one run", lambda now: Q(occurrences__lte=1)),
        "few": ("2 to 10 runs", lambda now: Q(occurrences__gt=1, occurrences__lte=10)),
        "many": ("More than 10 runs", lambda now: Q(occurrences__gt=10)),
    }


class OwnerFilter(admin.SimpleListFilter):
    """Mine, nobody's, or one person's (the owners present, read by index probes)."""

    title = "owner"
    parameter_name = "owner"
    MINE, NOBODY = "__mine__", "__nobody__"

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        owners = [name for name in accounts_present(Break, "owner_username") if name]
        return [(self.MINE, "Mine"), (self.NOBODY, "Nobody"), *((o, o) for o in owners)]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value is None:
            return queryset
        if value == self.MINE:
            return queryset.filter(owner_username=request.user.get_username())
        if value == self.NOBODY:
            return queryset.filter(owner_username="")
        return queryset.filter(owner_username=value)
