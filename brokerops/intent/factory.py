"""The one signal store factory: the store the settings name (docs/configuration.md).

It lives apart from the interface (:mod:`brokerops.intent.store`), which the implementations
import, so the abstract module never imports the concrete ones.
"""

from __future__ import annotations

from brokerops.intent.store import SignalStore, SignalStoreError


def get_signal_store() -> SignalStore:
    """The store named by the `SIGNAL_STORE` setting (``local`` or ``firestore``).

    Firestore uses `GOOGLE_CLOUD_PROJECT`, `FIRESTORE_EMULATOR_HOST` (the setting wins over the
    process environment) and `FIRESTORE_SIGNALS_COLLECTION`; its client is built once per
    process and settings combination. Raises `SignalStoreError` when the client cannot be built
    (no credentials, for example).
    """
    from django.conf import settings

    if settings.SIGNAL_STORE == "local":
        from brokerops.intent.local import LocalSignalStore

        return LocalSignalStore()
    if settings.SIGNAL_STORE == "firestore":
        from brokerops.intent.firestore import FirestoreSignalStore
        from brokerops.intent.firestore_client import firestore_client

        client = firestore_client(
            project=settings.GOOGLE_CLOUD_PROJECT,
            emulator_host=settings.FIRESTORE_EMULATOR_HOST,
        )
        return FirestoreSignalStore(client, settings.FIRESTORE_SIGNALS_COLLECTION)
    raise SignalStoreError(f"unknown SIGNAL_STORE {settings.SIGNAL_STORE!r}")
