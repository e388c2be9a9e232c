"""Fixtures for the signal-store suite.

`signal_store` runs each test twice: against the embedded local store (the Django test database)
and against Google's Cloud Firestore emulator, started once per session in its own process group.
`backdoor` lets a test play "another writer" and count the round trips the store makes, at the
backend boundary (gRPC stubs / SQL execution), never inside the store.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from brokerops.intent.firestore import FirestoreSignalStore
from brokerops.intent.local import LocalSignalStore
from brokerops.intent.models import LocalSignal, stored_document_id

# The local param carries the django_db mark (not a dynamic request for `db`): pytest-django
# creates only the test databases that the collected tests declare.
STORE_PARAMS = [
    pytest.param("local", marks=pytest.mark.django_db),
    pytest.param("firestore", marks=pytest.mark.firestore),
]


@pytest.fixture(params=STORE_PARAMS)
def signal_store(request):
    """Each store, empty: the local store on the test database, the Firestore store on the
    emulator (all documents deleted before the test)."""
    if request.param == "local":
        return LocalSignalStore()
    return request.getfixturevalue("firestore_store")


class Backdoor:
    """Another writer, and a meter on the backend boundary, for the store under test.

    - `data(id)` / `update(id, fields)`: read / merge-write a document without the store;
    - `before_next_write(callback)`: run `callback` once, just before the store's next write
      reaches the backend (after the store has read what it is about to change);
    - `calls`: round trips by kind (Firestore RPC name; for the local store the SQL verb of
      statements on the signal table, other statements as "VERB (other)").
    """

    calls: Counter

    def data(self, doc_id: str) -> dict[str, Any] | None:
        raise NotImplementedError

    def update(self, doc_id: str, fields: dict[str, Any]) -> None:
        raise NotImplementedError

    def before_next_write(self, callback: Callable[[], None]) -> None:
        self._pending = callback

    def _fire(self) -> None:
        callback, self._pending = getattr(self, "_pending", None), None
        if callback is not None:
            callback()


class FirestoreBackdoor(Backdoor):
    RPCS = ("run_query", "batch_get_documents", "commit")

    def __init__(self, store: FirestoreSignalStore, monkeypatch) -> None:
        self.calls = Counter()
        self._collection = store._collection
        api = store._client._firestore_api
        for name in self.RPCS:
            monkeypatch.setattr(api, name, self._meter(name, getattr(api, name)))

    def _meter(self, name, rpc):
        def metered(*args, **kwargs):
            if name == "commit":
                self._fire()
            self.calls[name] += 1
            return rpc(*args, **kwargs)

        return metered

    def data(self, doc_id):
        snapshot = self._collection.document(doc_id).get()
        return snapshot.to_dict() if snapshot.exists else None

    def update(self, doc_id, fields):
        self._collection.document(doc_id).update(fields)


class LocalBackdoor(Backdoor):
    def __init__(self) -> None:
        self.calls = Counter()

    def __call__(self, execute, sql, params, many, context):
        verb = sql.lstrip().split(None, 1)[0].upper()
        if "intent_localsignal" not in sql:
            verb = f"{verb} (other)"  # savepoints, the server clock
        elif verb == "UPDATE":
            self._fire()
        self.calls[verb] += 1
        return execute(sql, params, many, context)

    def data(self, doc_id):
        rows = LocalSignal.objects.filter(document_id=stored_document_id(doc_id))
        return rows.values_list("data", flat=True).first()

    def update(self, doc_id, fields):
        # What any other writer of the table must do: keep `status` and `revision` in step.
        row = LocalSignal.objects.get(document_id=stored_document_id(doc_id))
        row.data = {**row.data, **fields}
        row.status = LocalSignal.status_column(row.data)
        row.revision = uuid.uuid4()
        row.save(update_fields=["data", "status", "revision"])


@pytest.fixture
def backdoor(signal_store, monkeypatch):
    if isinstance(signal_store, FirestoreSignalStore):
        yield FirestoreBackdoor(signal_store, monkeypatch)
        return
    door = LocalBackdoor()
    with connection.execute_wrapper(door):
        yield door


@pytest.fixture
def configured_signal_store(request, signal_store, settings):
    """Settings pointing `get_signal_store()` at the same backend as `signal_store`."""
    if isinstance(signal_store, FirestoreSignalStore):
        emulator = request.getfixturevalue("firestore_emulator")
        settings.SIGNAL_STORE = "firestore"
        settings.GOOGLE_CLOUD_PROJECT = emulator.project
        settings.FIRESTORE_EMULATOR_HOST = emulator.host
        settings.FIRESTORE_SIGNALS_COLLECTION = "signals"
    else:
        settings.SIGNAL_STORE = "local"
    return signal_store
