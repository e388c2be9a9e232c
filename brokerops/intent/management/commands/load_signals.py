"""``python manage.py load_signals FILE.json [--replace]``: write signal documents to the store.

The file holds either a list of objects, each with an ``id`` and the signal's fields, or an object
mapping id -> fields. Every document is written as it is, valid or not (a broken document is
something reconciliation must report); the command then lists the ones that do not parse, with
their reasons. It exits non-zero, writing nothing, when the file cannot be read or its shape is
wrong (not JSON, an entry without an id, an id given twice).
"""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from brokerops.intent.factory import get_signal_store
from brokerops.intent.schema import InvalidSignal, parse_signal
from brokerops.intent.store import SignalStoreError, check_document_id


def read_signal_file(path: Path) -> list[tuple[str, dict]]:
    """The (id, fields) pairs in a signal file; `CommandError` says what is wrong with it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {path}: {exc}") from exc
    try:
        content = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{path} is not valid JSON: {exc}") from exc

    if isinstance(content, dict):
        entries = list(content.items())
    elif isinstance(content, list):
        entries = []
        for index, item in enumerate(content):
            if not isinstance(item, dict) or "id" not in item:
                raise CommandError(f"{path}: entry {index} is not an object with an 'id'")
            fields = {k: v for k, v in item.items() if k != "id"}
            entries.append((item["id"], fields))
    else:
        raise CommandError(f"{path}: expected a list of signals or an object of id -> signal")

    seen: set[str] = set()
    for doc_id, fields in entries:
        try:
            check_document_id(doc_id)
        except ValueError as exc:
            raise CommandError(f"{path}: {exc}") from exc
        if doc_id in seen:
            raise CommandError(f"{path}: signal id {doc_id!r} appears twice")
        seen.add(doc_id)
        if not isinstance(fields, dict):
            raise CommandError(f"{path}: signal {doc_id!r} is not an object")
    return entries


class Command(BaseCommand):
    help = "Load signal documents from a JSON file into the configured signal store."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="JSON list of signals or object id -> signal")
        parser.add_argument(
            "--replace", action="store_true", help="delete every stored signal first"
        )

    def handle(self, *args, file: Path, replace: bool, **options):
        entries = read_signal_file(file)
        store = get_signal_store()
        try:
            if replace:
                deleted = store.delete_all()
                self.stdout.write(f"Deleted {deleted} stored signal(s).")
            loaded = store.put_documents(entries)
        except SignalStoreError as exc:
            raise CommandError(f"signal store failed: {exc}") from exc

        invalid = [
            parsed
            for doc_id, fields in entries
            if isinstance(parsed := parse_signal(doc_id, fields), InvalidSignal)
        ]
        self.stdout.write(
            f"Loaded {loaded} signal(s) into {store!r}: "
            f"{loaded - len(invalid)} valid, {len(invalid)} invalid."
        )
        for item in invalid:
            self.stdout.write(self.style.WARNING(f"  invalid {item.id}: {'; '.join(item.reasons)}"))
