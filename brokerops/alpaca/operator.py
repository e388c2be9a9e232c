"""What the broker's failures mean to an operator: one line, and what to do about it
(docs/design.md section 10). :meth:`BrokerError.operator_line` answers with this, so the commands'
scaffolding (:mod:`brokerops.commands`, on the ground floor) needs to know no broker class."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings

from .constants import PAPER_BROKER_URL

if TYPE_CHECKING:
    from brokerops.accounts import AccountConfig

    from .errors import BrokerError


def broker_operator_line(exc: BrokerError) -> str:
    """What failed at the broker and what to do."""
    from .errors import BrokerMalformedResponse, BrokerRateLimited, BrokerRejected

    if isinstance(exc, BrokerRejected) and exc.status == 401:
        return f"the broker refused the API keys: {exc}{keys_hint()}"
    if isinstance(exc, BrokerRejected):
        return f"the broker refused the request: {exc}"
    if isinstance(exc, BrokerRateLimited):
        return f"the broker is rate limiting this account: {exc}"
    if isinstance(exc, BrokerMalformedResponse):
        return f"the broker's answer is malformed: {exc}"
    return f"the broker is unavailable: {exc}{paper_broker_hint()}"


def run_error_hint(error: str, account: AccountConfig | None = None) -> str:
    """What to do about a failed reconciliation run of ``account`` (the deployment's single
    account when None), from its recorded error."""
    if error.startswith("BrokerRejected") and "HTTP 401" in error:
        return keys_hint(account)
    if error.startswith("BrokerUnavailable"):
        return paper_broker_hint(account)
    return ""


def keys_hint(account: AccountConfig | None = None) -> str:
    """Where the refused keys came from: an ACCOUNTS_FILE account's variables (docs/design.md
    section 16), else the ALPACA_* ones."""
    if account is not None and account.key_env:
        return (
            f" (check {account.key_env} and {account.secret_env}, "
            f"the keys of account {account.name!r})"
        )
    if not settings.ALPACA_API_KEY:
        return " (no ALPACA_API_KEY set: the built-in paper broker's keys were sent)"
    return " (check ALPACA_API_KEY and ALPACA_SECRET_KEY)"


def paper_broker_hint(account: AccountConfig | None = None) -> str:
    if account is not None and account.key_env:
        return ""  # an ACCOUNTS_FILE account always has keys of its own
    if settings.ALPACA_API_KEY:
        return ""
    return (
        f" (no ALPACA_API_KEY set: the built-in paper broker is expected at "
        f"{settings.ALPACA_BASE_URL or PAPER_BROKER_URL}; start one with "
        "`python -m brokerops.sim --scenario demo`, or run `./dev demo`)"
    )
