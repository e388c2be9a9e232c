"""A system check: every admin action asks for a permission beyond "view" (docs/design.md,
section 7).

Django's admin offers an action to whoever may see the list unless the action names the
permissions it needs (``@admin.action(permissions=[...])``); a library's admin may not. This
check names every registered action, ours or a library's, that would run for a view-only user,
so such an admin fails ``manage.py check`` (and ``migrate``) instead of reaching a browser.
"""

from typing import Any

from django.contrib import admin
from django.core import checks


def actions_without_permissions(site: admin.AdminSite) -> list[checks.Error]:
    """An error for each action of ``site``'s admins that needs no permission beyond view."""
    errors = []
    for model, model_admin in site._registry.items():
        for func, name, _description in model_admin._get_base_actions():
            if set(getattr(func, "allowed_permissions", ())) - {"view"}:
                continue
            errors.append(
                checks.Error(
                    f"admin action {name!r} of {model._meta.label} runs for a view-only user",
                    hint="declare it with @admin.action(permissions=[...]) naming a permission "
                    "beyond view (docs/design.md, section 7)",
                    obj=type(model_admin),
                    id="brokerops.E101",
                )
            )
    return errors


def admin_actions_need_more_than_view(app_configs: Any = None, **kwargs: Any) -> list:
    """The registered check (:mod:`audit.apps`): the default admin site."""
    return actions_without_permissions(admin.site)
