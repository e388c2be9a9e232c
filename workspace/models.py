"""Who sees which accounts (docs/design.md section 16): a grant of one account to a user or to a
group, managed in the admin. A user's visible accounts are those granted to them and to their
groups; a user with no grant at all sees every account (:mod:`workspace.access`)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from brokerops.accounts import NAME_MAX

#: Who may add, change and delete grants (superusers aside); given to no group by default.
MANAGE_GRANTS_PERMISSION = "workspace.manage_account_grants"


class AccountGrant(models.Model):
    """One account a user, or every member of a group, may see. The name is not checked
    against the configuration: an account removed from ``ACCOUNTS_FILE`` keeps its rows, and
    a grant may still show them."""

    account = models.CharField(
        max_length=NAME_MAX, db_index=True, help_text="The account's name (ACCOUNTS_FILE)."
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="account_grants",
        help_text="The user who may see the account (or give a group instead).",
    )
    group = models.ForeignKey(
        "auth.Group",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="account_grants",
        help_text="Every member of this group may see the account (or give a user instead).",
    )
    created_by = models.CharField(max_length=150, blank=True, help_text="Who made the grant.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["account", "id"]
        # Only the view permission of the model's four: writing a grant takes one permission of
        # its own (or a superuser), whatever add/change/delete rights a user holds elsewhere.
        default_permissions = ("view",)
        permissions = [("manage_account_grants", "Can grant accounts to users and groups")]
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, group__isnull=True)
                | Q(user__isnull=True, group__isnull=False),
                name="account_grant_user_or_group",
                violation_error_message="Grant the account to a user or to a group (one of them).",
            ),
            models.UniqueConstraint(
                fields=["account", "user"],
                condition=Q(user__isnull=False),
                name="account_grant_once_per_user",
                violation_error_message="This user is granted this account already.",
            ),
            models.UniqueConstraint(
                fields=["account", "group"],
                condition=Q(group__isnull=False),
                name="account_grant_once_per_group",
                violation_error_message="This group is granted this account already.",
            ),
        ]

    def __str__(self) -> str:
        if self.user_id is not None:
            return f"{self.account} to user {self.user}"
        return f"{self.account} to group {self.group}"
