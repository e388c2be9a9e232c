"""gunicorn's settings for the web service (gunicorn also reads this file from the working
directory by default; the Dockerfile and docker-compose name it with ``-c``).

Metrics in multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, docs/operations.md, "Metrics"): when a
worker ends, its live-gauge files leave the shared directory; its counts stay in the sums.
"""


def child_exit(server, worker) -> None:
    from brokerops.metrics import process_dead

    process_dead(worker.pid)
