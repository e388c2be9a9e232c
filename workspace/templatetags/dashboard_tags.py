"""``{% brokerops_dashboard as d %}``: the admin index's dashboard (see
:mod:`workspace.dashboard`; the template only renders what the service read)."""

from django import template

from workspace.dashboard import Dashboard, dashboard_read

register = template.Library()


@register.simple_tag(name="brokerops_dashboard")
def brokerops_dashboard() -> Dashboard:
    return dashboard_read()
