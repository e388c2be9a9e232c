"""The embedded signal store's table (used when ``SIGNAL_STORE=local``).

Each row is one signal document kept as raw JSON, exactly as Firestore would hold it, so malformed
documents can exist and parse the same way in both stores. Read and change it only through
`brokerops.intent.local.LocalSignalStore`.
"""

import uuid

from django.db import models

from brokerops.intent.signal_model import DOCUMENT_ID_MAX_BYTES


def stored_document_id(doc_id: str) -> str:
    """The `document_id` column's form of a (valid) id: NUL as "/", everything else as is.

    PostgreSQL text cannot hold NUL, which Firestore ids may contain; no id contains "/", so the
    mapping is one-to-one and leaves every other id unchanged."""
    return doc_id.replace("\x00", "/")


def document_id_from_column(stored: str) -> str:
    """The id a `document_id` column value stands for (the inverse of `stored_document_id`)."""
    return stored.replace("/", "\x00")


class LocalSignal(models.Model):
    """One signal document.

    `status` mirrors ``data["status"]`` for the indexed bulk read: the string when it is one,
    NULL when the field is missing or null, ``"<type>"`` for another type (so it is never taken
    for a known status). `revision` changes on every write: a conditional write compares it, the
    local equivalent of Firestore's update-time precondition.

    `document_id` holds any Firestore id (up to 1,500 bytes of UTF-8, so at most 1,500
    characters; a 1,500-byte key fits PostgreSQL's unique btree index), with NUL stored as "/"
    (`stored_document_id`; `signal_id` is the id itself).
    """

    document_id = models.CharField(max_length=DOCUMENT_ID_MAX_BYTES, unique=True)
    data = models.JSONField()
    # NULL (not "") means "no status", as Firestore's `not-in` query tells a missing field apart.
    status = models.CharField(max_length=64, null=True, blank=True, db_index=True)  # noqa: DJ001
    # `account` mirrors ``data["account"]`` the same way, for one account's read (docs/design.md
    # section 16): NULL when missing, null or "", the string (at most 100) or ``"<type>"``.
    account = models.CharField(max_length=100, null=True, blank=True, db_index=True)  # noqa: DJ001
    revision = models.UUIDField(default=uuid.uuid4)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["document_id"]
        verbose_name = "signal (local store)"
        verbose_name_plural = "signals (local store)"

    def __str__(self) -> str:
        """The id, or its repr when it would not show (blank, padded, control characters)."""
        shown = self.signal_id
        if not shown or not shown.isprintable() or shown != shown.strip():
            return repr(shown)
        return shown

    def save(self, *args, **kwargs) -> None:
        """The `account` column follows ``data`` whoever saves the row (an admin, a test)."""
        self.account = self.account_column(self.data)
        super().save(*args, **kwargs)

    @property
    def signal_id(self) -> str:
        """The document id this row holds (NUL restored)."""
        return document_id_from_column(self.document_id)

    @staticmethod
    def account_column(data: object) -> str | None:
        """The value of the `account` column for a document's `data`."""
        value = data.get("account") if isinstance(data, dict) else None
        if value is None or value == "":
            return None
        if isinstance(value, str):
            return value[:100]
        return f"<{type(value).__name__}>"

    @staticmethod
    def status_column(data: object) -> str | None:
        """The value of the `status` column for a document's `data`."""
        value = data.get("status") if isinstance(data, dict) else None
        if value is None:
            return None
        if isinstance(value, str):
            return value[:64]
        return f"<{type(value).__name__}>"
