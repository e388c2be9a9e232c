"""What a reconciliation run announces to the floors above it (alerts listens).

``run_finished`` (sender :class:`~reconciliation.models.ReconciliationRun`, ``run=`` the row): a
run ended, whatever its status (skipped and never-started runs included), after its rows were
committed and its chain heads recorded. It is sent while the run still holds its lock, so what
receivers record is ordered run by run; anything slow (a delivery to a receiver outside) waits for
the lock's release with :func:`brokerops.locks.after_locks_released`, as alerts' deliveries do.
"""

from django.dispatch import Signal

run_finished = Signal()
