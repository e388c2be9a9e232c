"""`python manage.py verify_evidence FILE`: check an evidence pack offline (no database).

Exit status 0 when every file matches the signed manifest and every row its hash; 1 naming each
thing that does not match (one line each on stderr). Needs the ``AUDIT_HMAC_KEY`` the pack was
signed with.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from brokerops.commands import fail
from evidence.check import evidence_check


class Command(BaseCommand):
    help = "Check an evidence pack offline: its signed manifest, every file, every row's hash."
    requires_system_checks = []  # offline: no database needed

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the evidence pack (zip)")

    def handle(self, *args, file: str, **options) -> None:
        problems = evidence_check(file, key=settings.AUDIT_HMAC_KEY)
        if problems:
            for problem in problems:
                self.stderr.write(problem)
            raise fail(f"{file}: {len(problems)} thing(s) do not match", stderr=self.stderr)
        self.stdout.write(f"{file}: intact; every file and row matches the signed manifest")
