"""Admin building blocks shared by the audit apps."""

from django.contrib import admin
from django.http import HttpRequest


class AuditTrailAdmin(admin.ModelAdmin):
    """Read-only admin for append-mostly audit rows.

    Nobody adds, edits or deletes audit rows through the admin, superusers included: the rows are
    written by services. Staff see them with the model's ``view`` permission (group
    ``compliance``); operators' extra powers are admin actions guarded by custom permissions.
    """

    # Counting a million rows for "N total" on every page costs more than the page itself. For
    # the same reason the big audit tables filter by date with list_filter's fixed ranges rather
    # than date_hierarchy, whose year links scan the whole table.
    show_full_result_count = False
    list_per_page = 50

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class AuditTrailInline(admin.TabularInline):
    """Read-only inline for audit rows shown under their parent."""

    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
