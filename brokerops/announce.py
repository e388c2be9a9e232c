"""Announcements: how a floor tells the floors above it that something happened.

A floor never calls the apps above it (docs/design.md section 1): a reconciliation run or an
audit verification sends a Django signal defined on its own floor, and the apps that care (alerts)
connect receivers in their ``AppConfig.ready``. :func:`announce` sends one: a receiver that
raises is logged with its traceback and never reaches the sender, whose work is recorded already.
"""

from __future__ import annotations

import logging

from django.dispatch import Signal

logger = logging.getLogger(__name__)


def announce(signal: Signal, *, sender: type, **facts: object) -> None:
    """Send ``signal`` to every receiver; log (ERROR, with traceback) each one that raised."""
    for receiver, result in signal.send_robust(sender=sender, **facts):
        if isinstance(result, Exception):
            logger.error(
                "receiver %r of %s failed",
                receiver,
                sender.__name__,
                exc_info=(type(result), result, result.__traceback__),
            )
