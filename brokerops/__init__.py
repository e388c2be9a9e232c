"""brokerops: keeps a trading system honest with its broker.

Importing the package loads the Celery app so that ``@shared_task`` binds to it in every process
(web, worker, beat), as Celery's Django guide recommends.
"""

from .celery import app as celery_app

__all__ = ("celery_app",)
