"""``/metrics``: Prometheus' text format (docs/design.md section 13; the metrics are in
:mod:`brokerops.metrics`).

Access, no session and no login:
- ``METRICS_TOKEN`` set: only ``Authorization: Bearer <token>`` is served (compared in constant
  time); no header or another token is a 401 with ``WWW-Authenticate: Bearer``.
- ``METRICS_TOKEN`` unset: served to loopback clients only (``REMOTE_ADDR`` 127.0.0.0/8 or
  ``::1``: a scraper on the same host, or ``curl`` inside the container); anyone else gets a 403
  saying to set the token. ``X-Forwarded-For`` is never trusted for this.
"""

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from brokerops.metrics import CONTENT_TYPE, metrics_render


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Every process's counters and the database gauges, for a scraper allowed in (module doc)."""
    token = settings.METRICS_TOKEN
    if token:
        if not _bearer_matches(request.headers.get("Authorization", ""), token):
            response = HttpResponse(
                "a valid METRICS_TOKEN bearer token is required\n",
                status=401,
                content_type="text/plain",
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    elif not _is_loopback(request.META.get("REMOTE_ADDR", "")):
        return HttpResponse(
            "/metrics is served to loopback only while METRICS_TOKEN is unset\n",
            status=403,
            content_type="text/plain",
        )
    return HttpResponse(metrics_render(), content_type=CONTENT_TYPE)


def _bearer_matches(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
