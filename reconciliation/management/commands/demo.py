"""`python manage.py demo`: brokerops end to end on the embedded defaults.

Prepares the database, seeds demo staff users and serves the admin. Nothing but Python needed.
"""

from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from brokerops.access import assign_group_permissions

DEMO_USERS = (
    # username, group, password: demo-only credentials, printed on start.
    ("operator", "operations", "demo-operator"),
    ("compliance", "compliance", "demo-compliance"),
)


class Command(BaseCommand):
    help = "Run the brokerops demo on the embedded defaults and serve the admin."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000", help="admin address (host:port)")

    def handle(self, *args, addr: str, **options) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        for username, group, password in DEMO_USERS:
            user, _ = User.objects.get_or_create(username=username, defaults={"is_staff": True})
            user.is_staff = True
            user.set_password(password)
            user.save()
            if not Group.objects.filter(name=group).exists():
                assign_group_permissions()
            user.groups.add(Group.objects.get(name=group))
        self.stdout.write(self.style.SUCCESS("brokerops demo is up."))
        self.stdout.write(f"  Open http://{addr}/admin/ and log in as (demo-only credentials):")
        for username, group, password in DEMO_USERS:
            self.stdout.write(f"    {username} / {password}   ({group})")
        self.stdout.write("  Stop with Ctrl-C.")
        call_command("runserver", addr, use_reloader=False, use_threading=True)
