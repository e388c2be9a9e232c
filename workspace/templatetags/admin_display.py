"""Template tags for readable values (:mod:`workspace.display`): ``{% plain qty %}``
writes a number without trailing zeros, ``{% folded payload %}`` pretty-printed folded JSON."""

from typing import Any

from django import template
from django.utils.safestring import SafeString

from workspace.display import folded_json, plain_decimal

register = template.Library()


@register.simple_tag
def plain(value: Any) -> str:
    return plain_decimal(value)


@register.simple_tag
def folded(value: Any) -> SafeString:
    return folded_json(value)
