"""Account grants in the admin (docs/design.md section 16): which users and groups see which
accounts. Writing a grant takes ``workspace.manage_account_grants`` (or a superuser), which no
group holds by default; whoever may view the model sees the grants."""

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from brokerops.accounts import NAME_PATTERN, configured
from orders.models import OrderAttempt
from reconciliation.models import ReconciliationRun
from workspace.filters import accounts_present
from workspace.models import MANAGE_GRANTS_PERMISSION, AccountGrant


def known_accounts() -> list[str]:
    """The accounts a grant may name: the configured ones and those rows belong to (an account
    removed from the configuration keeps its rows)."""
    names = set(configured().names)
    for model in (ReconciliationRun, OrderAttempt):
        names.update(accounts_present(model, "account"))
    return sorted(names)


class AccountGrantForm(forms.ModelForm):
    class Meta:
        model = AccountGrant
        fields = ("account", "user", "group")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "account" in self.fields:  # not on a view-only page
            known = known_accounts()
            self.fields["account"].help_text = (
                f"One of: {', '.join(known)}." if known else "No account is known yet."
            )

    def clean_account(self) -> str:
        name = self.cleaned_data["account"].strip()
        if not NAME_PATTERN.fullmatch(name):
            raise forms.ValidationError(
                "An account's name is 1 to 32 of a-z, 0-9 and '-' "
                "(starting with a letter or digit)."
            )
        if name not in known_accounts():
            raise forms.ValidationError(
                f"No account {name!r} is configured and no row belongs to one of that name."
            )
        return name


@admin.register(AccountGrant)
class AccountGrantAdmin(admin.ModelAdmin):
    form = AccountGrantForm
    list_display = ("account", "user", "group", "created_by", "created_at")
    list_filter = ("account", "group")
    list_select_related = ("user", "group")
    search_fields = ("account__exact", "user__username", "group__name")
    ordering = ("account", "id")

    def _may_manage(self, request: HttpRequest) -> bool:
        user = request.user
        return user.is_active and (user.is_superuser or user.has_perm(MANAGE_GRANTS_PERMISSION))

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._may_manage(request) or super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._may_manage(request)

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._may_manage(request)

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return self._may_manage(request)

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return ("created_by", "created_at") if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: AccountGrant, form, change: bool) -> None:
        if not change:
            obj.created_by = request.user.get_username()
        super().save_model(request, obj, form, change)
