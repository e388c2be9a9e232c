"""`python manage.py evidence (--order CLIENT_ORDER_ID | --break ID | --from DATE --to DATE
[--account NAME]) -o FILE`: the evidence pack of one order, one break, or a range of days, as one
zip (docs/compliance.md).

Nothing is written for a bad request (an unknown order id or break, a range over the limit, no
signing key): exit status 1 and the reason on stderr. The pack is written to a temporary file beside
FILE and moved into place when complete. The download is recorded on the access log.
"""

import getpass
import os
import tempfile
from datetime import date
from pathlib import Path

from django.core.management.base import BaseCommand, CommandParser

from audit.access import access_record_build, access_records_append
from audit.models import AccessRecord
from brokerops.commands import fail
from evidence.pack import evidence_pack_write
from evidence.scope import EvidenceError, Scope


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a date (YYYY-MM-DD): {text!r}") from None


class Command(BaseCommand):
    help = "Write the evidence pack (zip) of one order, one break or a range of days (UTC)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--order", default="", help="a client order id")
        parser.add_argument("--break", dest="break_id", type=int, help="a break's number")
        parser.add_argument("--from", dest="start", type=_day, help="first day, YYYY-MM-DD")
        parser.add_argument("--to", dest="end", type=_day, help="last day, YYYY-MM-DD (included)")
        parser.add_argument("--account", default="", help="only this account (with a range)")
        parser.add_argument("-o", "--output", required=True, help="the zip to write")

    def handle(self, *args, order, break_id, start, end, account, output, **options) -> None:
        scope = Scope(order=order, break_id=break_id, start=start, end=end, account=account)
        target = Path(output)
        who = f"{getpass.getuser()} (manage.py evidence)"
        handle, temporary = tempfile.mkstemp(prefix=".evidence-", dir=target.parent or ".")
        try:
            with os.fdopen(handle, "wb") as out:
                manifest = evidence_pack_write(scope=scope, out=out, created_by=who)
            os.replace(temporary, target)
        except EvidenceError as exc:
            raise fail(f"evidence: {exc}", stderr=self.stderr) from exc
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
        access_records_append(
            [
                access_record_build(
                    user=who,
                    what=AccessRecord.What.EVIDENCE,
                    object_id=order or scope.slug(),
                    query=(
                        f"order={order}&break={break_id or ''}&from={start or ''}&to={end or ''}"
                        f"&account={account}"
                    ),
                )
            ]
        )
        rows = sum(f.get("rows") or 0 for f in manifest["files"] if f["name"].endswith(".csv"))
        self.stdout.write(f"{target}: evidence pack of {scope.describe()}, {rows:,} rows")
