"""The breaks workspace's words and rules (docs/design.md section 17), apart from the admin
classes that show them (:mod:`workspace.admin.breaks`):

- how old a break is and when it is due, in words ("3 h", "2 days", "overdue by 40 min");
- which actions a user may take on a break in its state (the page offers only those; the POST
  view asks the same question again, and the services in :mod:`reconciliation.breaks` a third
  time, so a forged form changes nothing);
- a break's story: every run that saw it (its ``Mismatch`` rows) and every event, paged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.paginator import Page, Paginator
from django.utils import timezone
from django.utils.html import format_html

from reconciliation import ageing
from reconciliation import breaks as services
from reconciliation.ageing import human_age
from reconciliation.models import Break, BreakEvent, Mismatch
from workspace.display import timestamp_display

#: Occurrences (runs) and events shown per page of a break's story.
STORY_PAGE = 50

State = Break.State


duration_words = human_age  # one wording of durations (reconciliation.ageing)


def since_html(moment: datetime | None, now: datetime | None = None) -> str:
    """``moment`` as "3 h ago", the timestamp itself on hover."""
    if moment is None:
        return "-"
    return format_html(
        '<span title="{}">{} ago</span>',
        timestamp_display(moment),
        duration_words((now or timezone.now()) - moment),
    )


def is_overdue(brk: Break, now: datetime | None = None) -> bool:
    """A live break past its due time (a signed-off or cleared one is never overdue)."""
    return ageing.is_overdue(state=brk.state, due_at=brk.due_at, now=now or timezone.now())


def age_words(brk: Break, now: datetime | None = None) -> str:
    """How long the break's current episode has lasted (since it opened or reopened); a closed
    or cleared one up to its closing."""
    end = brk.closed_at if brk.state not in services.LIVE and brk.closed_at else None
    return duration_words((end or now or timezone.now()) - brk.opened_at)


def due_words(brk: Break, now: datetime | None = None) -> str:
    """ "in 3 h", "overdue by 2 days", or "-" once the break is no longer live."""
    if brk.state not in services.LIVE:
        return "-"
    now = now or timezone.now()
    if brk.due_at <= now:
        return f"overdue by {duration_words(now - brk.due_at)}"
    return f"in {duration_words(brk.due_at - now)}"


# Who may do what (the services check again; this decides what the page offers).


def _may_work(user) -> bool:
    return user.has_perm(services.PROPOSE) or user.has_perm(services.APPROVE)


def _not_the_proposer(user, brk: Break) -> bool:
    return brk.proposed_by_username != user.get_username()


@dataclass(frozen=True)
class Action:
    """One thing a person can do to a break: its form's name, its button, the text it asks for
    (``text``: the POST field and its label; required or not), and when it is offered."""

    name: str
    button: str
    text_label: str
    text_required: bool
    states: frozenset[str] | None  # None: any state
    allowed: Callable[[Any, Break], bool]
    help: str = ""

    def offered(self, user, brk: Break) -> bool:
        in_state = self.states is None or brk.state in self.states
        return in_state and self.allowed(user, brk)


ACTIONS: dict[str, Action] = {
    action.name: action
    for action in (
        Action(
            "acknowledge",
            "Take it (acknowledge)",
            "Comment",
            True,
            frozenset({State.OPEN, State.ACKNOWLEDGED}),
            lambda user, brk: _may_work(user),
            "You become its owner.",
        ),
        Action(
            "propose",
            "Propose",
            "Reason",
            True,
            frozenset({State.ACKNOWLEDGED}),
            lambda user, brk: user.has_perm(services.PROPOSE),
            "A second person with approve_break signs it off.",
        ),
        Action(
            "approve",
            "Approve (close)",
            "Comment (optional)",
            False,
            frozenset({State.PROPOSED}),
            lambda user, brk: user.has_perm(services.APPROVE) and _not_the_proposer(user, brk),
        ),
        Action(
            "reject",
            "Reject (reopen)",
            "Reason",
            True,
            frozenset({State.PROPOSED}),
            lambda user, brk: user.has_perm(services.APPROVE),
        ),
        Action(
            "review",
            "Mark the repair reviewed",
            "Comment (optional)",
            False,
            frozenset({State.CLOSED}),
            lambda user, brk: user.has_perm(services.APPROVE) and brk.needs_review,
        ),
        Action(
            "comment",
            "Comment",
            "Comment",
            True,
            None,
            lambda user, brk: _may_work(user),
        ),
    )
}


def actions_offered(user, brk: Break) -> list[Action]:
    return [action for action in ACTIONS.values() if action.offered(user, brk)]


def break_act(*, action: str, brk: Break, user, data: Any) -> Break:
    """Carry out ``action`` (a POST's fields in ``data``) through its service. Raises
    :class:`~reconciliation.breaks.BreakRefused` for an action not offered to ``user`` now, or
    one the service refuses."""
    chosen = ACTIONS.get(action)
    if chosen is None:
        raise services.BreakRefused(f"{action!r} is not an action on a break")
    if not chosen.offered(user, brk):
        raise services.BreakRefused(
            f"you may not {chosen.name} break #{brk.pk} "
            f"({brk.get_state_display().lower()}, your permissions)"
        )
    text = data.get("text", "")
    common = {"break_id": brk.pk, "user": user}
    if action == "acknowledge":
        return services.break_acknowledge(**common, comment=text)
    if action == "propose":
        return services.break_propose(
            **common, disposition=data.get("disposition", ""), reason=text
        )
    if action == "approve":
        return services.break_approve(**common, comment=text)
    if action == "reject":
        return services.break_reject(**common, reason=text)
    if action == "review":
        return services.break_review(**common, comment=text)
    return services.break_comment(**common, text=text)


DONE = {
    "acknowledge": "taken",
    "propose": "proposed for approval",
    "approve": "approved and closed",
    "reject": "rejected and reopened",
    "review": "reviewed",
    "comment": "commented on",
}


# The story.


def _page(queryset, number: Any) -> Page:
    return Paginator(queryset, STORY_PAGE).get_page(number)


def occurrences_page(brk: Break, number: Any) -> Page:
    """The runs that saw ``brk``: its ``Mismatch`` rows, newest first, with their runs.

    The page's ids come first from the ``(break_case, id)`` index alone (an index-only scan);
    asked for whole rows in id order at once, the planner walks the table's id index instead,
    filtering a million rows for a break found long ago."""
    ids = Mismatch.objects.filter(break_case_id=brk.pk).order_by("-id").values_list("id", flat=True)
    page = _page(ids, number)
    rows = (
        Mismatch.objects.filter(pk__in=list(page.object_list))
        .select_related("run")
        .only(
            "id",
            "kind",
            "severity",
            "expected_qty",
            "actual_qty",
            "action",
            "detail",
            "created_at",
            "run__id",
            "run__started_at",
            "run__status",
            "run__trigger",
        )
        .order_by("-id")
    )
    page.object_list = list(rows)
    return page


def events_page(brk: Break, number: Any) -> Page:
    """What happened to ``brk``, oldest first (events and comments alike)."""
    return _page(
        BreakEvent.objects.filter(break_case_id=brk.pk).order_by("created_at", "id"), number
    )
