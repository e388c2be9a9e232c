"""The account's activities as Alpaca booked them (docs/design.md section 18.2).

One row per activity and account (Alpaca's id unique per account), written only by
:func:`ledger.services.activities_record`, append-only and hash-chained
(``account_activities`` in :data:`audit.chain.CHAINS`). Figures are exact at any precision
(a coin fee or a split's quantity may carry more than the 9 decimals of a signal's quantity).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from functools import partial
from operator import itemgetter
from typing import Any

from django.db import connections, models
from django.utils import timezone

from audit.chain import chained_json_text
from audit.models import ChainedQuerySet, ChainedRow
from brokerops.alpaca.parsing.activities import parse_activity
from brokerops.alpaca.types import Activity
from brokerops.fields import ExactDecimalField, account_field, plain_decimal_text, price_field

ID_MAX = 255  # Alpaca's ids are 55 characters (``YYYYMMDDHHMMSSmmm::<uuid>``)
CODE_MAX = 64  # a type, sub-type, side or status
SYMBOL_MAX = 64
ORDER_ID_MAX = 128


class ActivityQuerySet(ChainedQuerySet):
    """Chained rows enter through :func:`audit.chain.chain_append` as for every chain; on
    PostgreSQL its insert is one ``COPY`` instead of an ``INSERT`` of arrays: a first read of
    100,000 activities is 1,000 pages, and quoting each page's raw bodies into array literals
    took a third of the sync; ``COPY`` takes a third of that (docs/benchmarks.md). The rows
    come back without primary keys (the writer needs none); triggers and constraints apply to
    ``COPY`` as to ``INSERT``."""

    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        connection = connections[self.db]
        if (
            connection.vendor != "postgresql"
            or len(objs) < 2
            or args
            or kwargs.keys() - {"batch_size"}
        ):
            return super().bulk_create(objs, *args, **kwargs)
        if any(not obj.hash for obj in objs):
            return super().bulk_create(objs)  # refused there, with the reason
        fields = [f for f in self.model._meta.concrete_fields if not f.primary_key]
        table = connection.ops.quote_name(self.model._meta.db_table)
        columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
        values_of = itemgetter(*(f.attname for f in fields))
        texts, special, chained = [], [], []
        for i, f in enumerate(fields):
            prepare = _copy_preparer(f, connection)
            if isinstance(f, models.JSONField):
                chained.append((i, f.attname, prepare))  # the text chain_append hashed, if any
            elif prepare is None:  # a text column: a str as it is (one type check below)
                texts.append((i, partial(f.get_db_prep_save, connection=connection)))
            else:
                special.append((i, prepare))
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(
                f"COPY {table} ({columns}) FROM STDIN"  # names from the model, never from input
            ) as copy,
        ):
            write_row = copy.write_row
            for obj in objs:
                values = list(values_of(obj.__dict__))
                for i, name, prepare in chained:
                    text = chained_json_text(obj, name)
                    values[i] = prepare(values[i]) if text is None else text
                for i, prepare in special:
                    values[i] = prepare(values[i])
                for i, prepare in texts:
                    if type(values[i]) is not str:
                        values[i] = prepare(values[i])
                write_row(values)
        return objs


def _copy_preparer(field: models.Field, connection: Any) -> Callable[[Any], Any] | None:
    """What ``COPY`` is given for a value of ``field``: None, the value itself, for a text
    column (psycopg writes a ``str`` as the column reads it; anything else goes through
    Django's preparation); else a function giving the text of an exact decimal or a JSON value,
    an aware timestamp as it is, and Django's ``get_db_prep_save`` for anything else. Django's
    per-value preparation of every field took a third of a 100,000-row first read
    (docs/benchmarks.md); this decides per field once."""

    def django(value: Any) -> Any:
        return field.get_db_prep_save(value, connection)

    if isinstance(field, ExactDecimalField):
        return lambda v: (
            plain_decimal_text(v) if type(v) is Decimal else None if v is None else django(v)
        )
    if isinstance(field, models.JSONField) and field.encoder is None:
        dumps = json.dumps
        return lambda v: dumps(v) if type(v) is dict else django(v)
    if isinstance(field, models.DateTimeField):
        return lambda v: (
            v if v is None or (type(v) is datetime and v.tzinfo is not None) else django(v)
        )
    if isinstance(field, models.CharField | models.TextField):
        return None
    return django


class AccountActivity(ChainedRow):
    """One account activity (``GET /v2/account/activities``): a fill, a fee, a split leg, a
    merger, a dividend, or a type nobody here knows yet (kept as sent)."""

    account = account_field()
    # The two indexes below lead with the account: a third on it alone would only slow the
    # writer (a first read inserts 100,000 rows; docs/benchmarks.md).
    account.db_index = False
    activity_id = models.CharField(max_length=ID_MAX, help_text="Alpaca's id (unique per account).")
    activity_type = models.CharField(max_length=CODE_MAX, db_index=True)
    sub_type = models.CharField(max_length=CODE_MAX, blank=True)
    symbol = models.CharField(max_length=SYMBOL_MAX, blank=True, db_index=True)
    side = models.CharField(max_length=CODE_MAX, blank=True)
    qty = price_field(help_text="Signed as Alpaca sends it; exact.")
    price = price_field()
    net_amount = price_field()
    occurred_at = models.DateTimeField(
        null=True, blank=True, db_index=True, help_text="Executed at, else the activity's date."
    )
    order_id = models.CharField(max_length=ORDER_ID_MAX, blank=True, db_index=True)
    status = models.CharField(max_length=CODE_MAX, blank=True)
    description = models.TextField(blank=True)
    raw = models.JSONField(default=dict, blank=True, help_text="The body as Alpaca sent it.")
    recorded_at = models.DateTimeField(default=timezone.now)

    objects = ActivityQuerySet.as_manager()

    class Meta:
        verbose_name = "account activity"
        verbose_name_plural = "account activities"
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "activity_id"], name="ledger_activity_once")
        ]
        indexes = [
            # The cursor: the account's last stored row (ledger.selectors.activity_cursor).
            models.Index(fields=["account", "id"], name="ledger_activity_account_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.activity_type} {self.activity_id}"

    def as_activity(self) -> Activity:
        """The typed record again (its ``family``, ``leg``, ``moves_position``), parsed from the
        body as received: what the explained breaks read."""
        return parse_activity(self.raw)
