"""The viewer's time zone (docs/compliance.md, "Reading the workspace"): every page shows times
in the zone of the browser reading it, named on the page; exports stay in UTC.

The admin's base template (``admin/base_site.html``) stores the browser's IANA zone
(``Intl.DateTimeFormat().resolvedOptions().timeZone``) in the :data:`COOKIE` cookie; this
middleware activates it for each request. No cookie yet (the very first page, a client without
JavaScript) or a name that is not a zone: the site's ``TIME_ZONE`` (UTC), named as such, so a
time is never shown in a zone the page does not name.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from functools import lru_cache

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

COOKIE = "brokerops_tz"
#: IANA names are short ("America/Argentina/ComodRivadavia" is among the longest).
MAX_ZONE_NAME = 64


@lru_cache(maxsize=256)
def zone_named(name: str) -> zoneinfo.ZoneInfo | None:
    """The zone called ``name`` (an IANA name); None for anything else."""
    name = name.strip()
    if not name or len(name) > MAX_ZONE_NAME or name.startswith(("/", ".")) or ".." in name:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def viewer_zone_middleware(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    """Activates the zone the viewer's browser named (:data:`COOKIE`) for the request."""

    def middleware(request: HttpRequest) -> HttpResponse:
        zone = zone_named(request.COOKIES.get(COOKIE, ""))
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return get_response(request)
        finally:
            timezone.deactivate()

    return middleware
