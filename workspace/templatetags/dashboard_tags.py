"""``{% brokerops_dashboard as d %}``: the admin index's dashboard (see
:mod:`workspace.dashboard`; the template only renders what the service read), from the rows of
the accounts the signed-in user sees (:mod:`workspace.access`)."""

from django import template

from workspace.access import visible_accounts
from workspace.dashboard import Dashboard, dashboard_read

register = template.Library()


@register.simple_tag(name="brokerops_dashboard", takes_context=True)
def brokerops_dashboard(context) -> Dashboard:
    request = context.get("request")
    return dashboard_read(visible=visible_accounts(request.user if request else None))
