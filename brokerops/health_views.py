"""``/healthz`` and ``/readyz`` (docs/design.md section 13; the checks are in
:mod:`brokerops.health`).

No login, no session, no CSRF token (GET and HEAD only), never cached. Neither logs per request:
a ``/readyz`` 503 is marked as logged so Django's request logger does not add an ERROR line on
every probe during an outage (:mod:`brokerops.health` logs each change of state once).
"""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from brokerops.health import health_readiness


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """The process answers: 200, nothing checked."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    """Database, Redis (when configured), last successful reconciliation: 200, or 503 naming the
    failing checks."""
    readiness = health_readiness()
    response = JsonResponse(readiness.as_json(), status=200 if readiness.ok else 503)
    # django.utils.log.log_response skips a response so marked: the outage is logged by the
    # checks, once, not as an ERROR on every probe.
    response._has_been_logged = True
    return response
