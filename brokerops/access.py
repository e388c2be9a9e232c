"""Who may do what: the two staff groups and their permissions.

``compliance`` views and searches the audit trail (and which periodic jobs exist); ``operations``
views it too, may trigger reconciliation reruns and order re-syncs, and sees the scheduler's
internals (django-celery-beat's interval, crontab, solar and clocked tables); only operations may
change the schedule (``audit.change_schedule``), and every change is recorded. On breaks,
operations propose dispositions and compliance approves them (four eyes). Migrations call
:func:`sync_groups` (with the historical app registry) so the groups exist on every database; it
is idempotent, and a migration that adds a model to the trail, or changes a grant, calls it
again.
"""

from typing import Any

from django.contrib.auth.management import create_permissions

#: Granted to both groups: viewing the trail, and the two recorded actions that read it (start a
#: verification, download an evidence pack). Each group's own extras follow.
BOTH_GROUPS = {
    "reconciliation": [
        "view_reconciliationrun",
        "view_mismatch",
        "view_runevent",
        "view_break",
        "view_breakevent",
    ],
    # The schedule's changes (who enabled, disabled, ran or edited which job) are part of the trail.
    "audit": [
        "view_chainhead",
        "view_auditverification",
        "view_schedulechange",
        # Who viewed or took what (docs/design.md section 19): compliance reads it, nobody edits.
        "view_accessrecord",
        # Beyond view, for both groups: start a verification, download an evidence pack (each
        # request recorded on the access log).
        "verify_audit",
        "download_evidence",
    ],
    "orders": ["view_orderattempt", "view_orderevent", "view_orderexecution"],
    "intent": ["view_localsignal"],
    # The account's activities as Alpaca booked them (docs/design.md section 18).
    "ledger": ["view_accountactivity"],
    # Which jobs run (reconciliation, order sync, audit verification): the periodic task list.
    "django_celery_beat": ["view_periodictask"],
}
# Four eyes on breaks (docs/design.md section 17): operations propose a disposition, compliance
# approves it; neither group holds both, and the service refuses the proposer's own approval.
COMPLIANCE_EXTRA = {"reconciliation": ["approve_break"]}
OPERATOR_EXTRA = {
    "reconciliation": ["trigger_reconciliation", "propose_break"],
    "orders": ["resync_orderattempt"],
    "alerts": ["view_alert"],  # what was sent to the operators, and how delivery went
    # Changing the schedule (enable, disable, toggle, run now, edit, add, delete periodic tasks and
    # their schedules) is one permission of its own (docs/design.md section 7).
    "audit": ["change_schedule"],
    # The scheduler's internals (docs/design.md section 7): for operators, not compliance.
    "django_celery_beat": [
        "view_intervalschedule",
        "view_crontabschedule",
        "view_solarschedule",
        "view_clockedschedule",
    ],
}

GROUPS: dict[str, dict[str, list[str]]] = {
    "compliance": {
        label: BOTH_GROUPS.get(label, []) + COMPLIANCE_EXTRA.get(label, [])
        for label in BOTH_GROUPS.keys() | COMPLIANCE_EXTRA.keys()
    },
    "operations": {
        label: BOTH_GROUPS.get(label, []) + OPERATOR_EXTRA.get(label, [])
        for label in BOTH_GROUPS.keys() | OPERATOR_EXTRA.keys()
    },
}


def sync_groups(apps: Any, schema_editor: Any = None) -> None:
    """Create the groups and grant exactly the permissions listed above that exist so far."""
    # Permissions are normally created after all migrations ran; create them now so the groups
    # can reference them within the same migrate.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    assign_group_permissions(apps)


def assign_group_permissions(apps: Any = None) -> None:
    """Create the groups and grant exactly the listed permissions (those that exist).

    With no ``apps``, uses the live app registry: for code outside migrations (the demo, tests
    that flush the database) once permissions exist.
    """
    if apps is None:
        from django.apps import apps
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, grants in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        wanted = Permission.objects.none()
        for app_label, codenames in grants.items():
            wanted = wanted | Permission.objects.filter(
                content_type__app_label=app_label, codename__in=codenames
            )
        group.permissions.set(wanted)
