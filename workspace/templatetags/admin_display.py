"""Template tags for readable values (:mod:`workspace.display`): ``{% plain qty %}``
writes a number without trailing zeros, ``{% folded payload %}`` pretty-printed folded JSON,
``{{ at|when }}`` a timestamp as every page shows it."""

from typing import Any

from django import template
from django.utils.safestring import SafeString

from workspace.display import folded_json, plain_decimal
from workspace.display import status_words as status_words_of
from workspace.display import when as when_shown

register = template.Library()


@register.simple_tag
def plain(value: Any) -> str:
    return plain_decimal(value)


@register.simple_tag
def folded(value: Any) -> SafeString:
    return folded_json(value)


@register.filter
def when(value: Any) -> str:
    """``{{ at|when }}``: a timestamp to the millisecond in the viewer's zone, the zone named
    (:func:`workspace.display.when`, the one definition every page uses)."""
    return when_shown(value)


@register.filter
def status_words(value: Any) -> str:
    """``{{ status|status_words }}``: a status code in words (see
    :func:`workspace.display.status_words`)."""
    return status_words_of(value)
