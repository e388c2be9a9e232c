"""WSGI entry point (gunicorn brokerops.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "brokerops.settings")

application = get_wsgi_application()
