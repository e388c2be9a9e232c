"""Who sees which accounts (docs/design.md section 16): the one rule every surface of the
workspace reads (lists, pages, search, counts, the timeline, the exports, the dashboard).

- A superuser sees every account.
- A user with a grant (:class:`workspace.models.AccountGrant`) to them or to one of their groups
  sees the union of the accounts granted, and no row of any other account.
- A user with no grant at all sees every account (a deployment that grants nothing works as it
  did before accounts).

``None`` stands for "every account"; otherwise a frozenset of names (possibly empty: an anonymous
or inactive user sees nothing).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from brokerops.accounts import configured
from workspace.models import AccountGrant

# The answer is kept on the user object, which lives for one request (as Django keeps its
# permission cache): a page asks many times, a grant changed shows from the next request.
_CACHE_ATTRIBUTE = "_brokerops_visible_accounts"
_UNSET = object()


def visible_accounts(user: Any) -> frozenset[str] | None:
    """The accounts ``user`` may see: None for every account, else their names."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    if user.is_superuser:
        return None
    cached = getattr(user, _CACHE_ATTRIBUTE, _UNSET)
    if cached is not _UNSET:
        return cached
    granted = frozenset(
        AccountGrant.objects.filter(
            Q(user_id=user.pk) | Q(group_id__in=user.groups.values("pk"))
        ).values_list("account", flat=True)
    )
    visible = granted or None
    setattr(user, _CACHE_ATTRIBUTE, visible)
    return visible


def forget_visible_accounts(user: Any) -> None:
    """Drop the answer kept on ``user`` (after changing their grants in the same request)."""
    if user is not None and hasattr(user, _CACHE_ATTRIBUTE):
        delattr(user, _CACHE_ATTRIBUTE)


def only_visible(
    queryset: QuerySet, visible: frozenset[str] | None, *, path: str = "account"
) -> QuerySet:
    """``queryset`` kept to the rows of the ``visible`` accounts (``path`` names the account
    column, through a relation for rows that belong through their parent)."""
    if visible is None:
        return queryset
    return queryset.filter(**{f"{path}__in": sorted(visible)})


def may_see(visible: frozenset[str] | None, account: str) -> bool:
    return visible is None or account in visible


def signal_owner(account_field: Any) -> str:
    """The account a signal document belongs to for who sees it: the configured account it
    names; a document naming none, or an unknown one, is the rows owner's (the account whose
    scope reports it, :class:`brokerops.intent.store.AccountScope`)."""
    accounts = configured()
    if isinstance(account_field, str) and account_field in accounts:
        return account_field
    return accounts.rows_owner


def signal_visible(account_field: Any, visible: frozenset[str] | None) -> bool:
    """May a user seeing ``visible`` see a signal whose ``account`` field is ``account_field``?
    Its owner's rows, or an account named outright (one removed from the configuration)."""
    if visible is None:
        return True
    if isinstance(account_field, str) and account_field in visible:
        return True
    return signal_owner(account_field) in visible


def signal_documents_q(visible: frozenset[str] | None) -> Q | None:
    """The stored signal documents :func:`signal_visible` lets through, as a filter on their
    indexed ``account`` column (the document's ``account``, mirrored); None for every document."""
    if visible is None:
        return None
    named = Q(account__in=sorted(visible))
    accounts = configured()
    if accounts.rows_owner not in visible:
        return named
    unowned = Q(account__isnull=True) | ~Q(account__in=accounts.names)
    return named | unowned
