"""Facts the ground floor reports but the apps above it own (docs/design.md section 13).

``/readyz`` and ``/metrics`` show when the last successful reconciliation run finished and
whether the latest audit verification found the trail intact. Reading either needs an app's
models, which the ground floor never imports: each app hands its reader in at start (its
``AppConfig.ready``), and the probes call it through here. Imports no Django (the gunicorn config
loads :mod:`brokerops.metrics`, which uses this module, in the master).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Generic, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class ReaderMissing(RuntimeError):
    """No app handed in the reader: the app that owns the fact is not installed."""


class Reading(Generic[P, R]):
    """One fact, read by the function its owning app provides."""

    def __init__(self, what: str, *, owner: str) -> None:
        self.what = what
        self.owner = owner
        self._reader: Callable[P, R] | None = None

    def provide(self, reader: Callable[P, R]) -> None:
        self._reader = reader

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if self._reader is None:
            raise ReaderMissing(
                f"{self.what}: provided by the {self.owner!r} app when it loads; "
                "is it in INSTALLED_APPS?"
            )
        return self._reader(*args, **kwargs)


#: When the latest successful, non-dry reconciliation run finished (``None``: none yet); the
#: reader takes ``using=`` (a database alias, "default" when omitted).
last_successful_run_finished_at: Reading[..., datetime | None] = Reading(
    "the last successful reconciliation run", owner="reconciliation"
)
#: Whether the latest audit verification found the chains intact (``None``: never verified).
audit_chain_intact: Reading[[], bool | None] = Reading("the audit chain's state", owner="audit")
