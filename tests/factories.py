"""Small factories for audit rows and staff users."""

from decimal import Decimal
from itertools import count

from django.contrib.auth.models import Group, User

from audit.chain import chain_append
from brokerops.access import assign_group_permissions
from orders.models import OrderAttempt, OrderEvent
from reconciliation.models import Mismatch, ReconciliationRun

_seq = count(1)


def restore_groups() -> None:
    """A transactional test's flush drops the groups the migration made (and may leave the
    content-type cache stale); rebuild permissions and groups as the migration does."""
    from django.apps import apps
    from django.contrib.auth.management import create_permissions
    from django.contrib.contenttypes.management import create_contenttypes
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.clear_cache()
    for app_config in apps.get_app_configs():
        create_contenttypes(app_config, verbosity=0)
        create_permissions(app_config, verbosity=0)
    assign_group_permissions()


def staff_user(
    *, group: str, username: str | None = None, password: str = "pw-for-tests-1"
) -> User:
    user = User.objects.create_user(
        username=username or f"{group}-{next(_seq)}", password=password, is_staff=True
    )
    if not Group.objects.filter(name=group, permissions__isnull=False).exists():
        restore_groups()
    user.groups.add(Group.objects.get(name=group))
    return user


def reconciliation_run(**fields) -> ReconciliationRun:
    fields.setdefault("trigger", ReconciliationRun.Trigger.SCHEDULE)
    fields.setdefault("status", ReconciliationRun.Status.SUCCEEDED)
    return ReconciliationRun.objects.create(**fields)


def mismatch(*, run: ReconciliationRun | None = None, **fields) -> Mismatch:
    fields.setdefault("kind", Mismatch.Kind.ORPHAN_POSITION)
    fields.setdefault("severity", Mismatch.Severity.CRITICAL)
    fields.setdefault("symbol", "AAPL")
    (row,) = chain_append([Mismatch(run=run or reconciliation_run(), **fields)])
    return row


def order_attempt(**fields) -> OrderAttempt:
    n = next(_seq)
    fields.setdefault("client_order_id", f"bo-sig{n}-entry")
    fields.setdefault("signal_id", f"sig{n}")
    fields.setdefault("symbol", "AAPL")
    fields.setdefault("side", "buy")
    fields.setdefault("order_type", "market")
    fields.setdefault("qty", Decimal("10"))
    return OrderAttempt.objects.create(**fields)


def order_event(*, attempt: OrderAttempt, **fields) -> OrderEvent:
    from orders.services.events import order_event_record

    fields.setdefault("kind", OrderEvent.Kind.CREATED)
    return order_event_record(attempt=attempt, **fields)
