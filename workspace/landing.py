"""Where staff land after signing in (docs/compliance.md): compliance on the open breaks list,
their to-do list (docs/design.md section 17); operators, and anyone who may trigger runs, on the
admin index and its dashboard, as before. Only the landing moves: "Home" stays the index."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

#: Who lands on the breaks list: whoever may view breaks...
BREAKS_VIEWER = "reconciliation.view_break"
#: ...unless they run reconciliation (operators keep the dashboard).
OPERATOR = "reconciliation.trigger_reconciliation"


def lands_on_breaks(user) -> bool:
    return user.has_perm(BREAKS_VIEWER) and not user.has_perm(OPERATOR)


def login_view(request: HttpRequest) -> HttpResponse:
    """The admin's own login; a sign-in bound for the index goes to the breaks list instead,
    for those who land there."""
    response = admin.site.login(request)
    index = reverse("admin:index")
    if (
        request.method == "POST"
        and isinstance(response, HttpResponseRedirect)
        and response.url == index
        and request.user.is_authenticated
        and lands_on_breaks(request.user)
    ):
        return HttpResponseRedirect(reverse("admin:reconciliation_break_changelist"))
    return response
