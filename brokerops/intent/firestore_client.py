"""The Firestore client brokerops uses, and the mapping of the client's errors.

`firestore_client()` builds (and caches) the client the way the settings ask; its transport reads
server streams on the calling thread (`_CallingThreadStreamsTransport`). `firestore_errors`
turns the Google client's exceptions into the store's two error types, once, for every module
that talks to Firestore (the store and its listener).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core import retry as retries
from google.auth import exceptions as auth_exceptions
from google.cloud import firestore
from google.cloud.firestore_v1.services.firestore import client as gapic_client
from google.cloud.firestore_v1.services.firestore.transports.grpc import FirestoreGrpcTransport

from brokerops.intent.store import SignalStoreError, SignalStoreUnavailable

logger = logging.getLogger(__name__)

#: Project used with the emulator when none is configured.
DEFAULT_EMULATOR_PROJECT = "brokerops-local"

_EMULATOR_ENV = "FIRESTORE_EMULATOR_HOST"
_TRANSIENT = (
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.ResourceExhausted,
    gexc.TooManyRequests,
    gexc.Aborted,
    gexc.RetryError,
    auth_exceptions.TransportError,
)
# A write's precondition failed: the document changed (or vanished) since it was read. The
# emulator reports a vanished document as FAILED_PRECONDITION too.
CONFLICT = (gexc.FailedPrecondition, gexc.NotFound)
# Errors worth another attempt within one call's deadline. A commit is safe to retry: its writes
# carry update-time preconditions (or are whole-document sets).
RETRYABLE = retries.if_exception_type(
    gexc.ServiceUnavailable, gexc.InternalServerError, gexc.ResourceExhausted
)


@contextlib.contextmanager
def firestore_errors(action: str) -> Iterator[None]:
    """Translate Google client errors into the store's two error types."""
    try:
        yield
    except _TRANSIENT as exc:
        raise SignalStoreUnavailable(f"Firestore {action} failed: {exc}") from exc
    except (gexc.GoogleAPIError, auth_exceptions.GoogleAuthError) as exc:
        raise SignalStoreError(f"Firestore {action} failed: {exc}") from exc


# --- client ---------------------------------------------------------------------------------------

_clients: dict[tuple[int, str | None, str | None], firestore.Client] = {}
_clients_lock = threading.Lock()


def firestore_client(*, project: str | None, emulator_host: str | None) -> firestore.Client:
    """A Firestore client for `project`, talking to the emulator at `emulator_host` when given.

    Cached per process (gRPC channels do not survive a fork) and per arguments. The arguments
    win over the process environment: the Google client reads ``FIRESTORE_EMULATOR_HOST`` from
    ``os.environ`` when it is built, so the variable is set (or removed) for the duration of the
    construction, under a lock, and restored afterwards. With an emulator the client uses
    anonymous credentials and `project` defaults to `DEFAULT_EMULATOR_PROJECT`; without one,
    Google's default credentials are used and a missing credential raises `SignalStoreError`.
    """
    key = (os.getpid(), project, emulator_host)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _build_client(project, emulator_host)
            _clients[key] = client
        return client


def _build_client(project: str | None, emulator_host: str | None) -> firestore.Client:
    saved = os.environ.get(_EMULATOR_ENV)
    try:
        if emulator_host:
            os.environ[_EMULATOR_ENV] = emulator_host
            project = project or DEFAULT_EMULATOR_PROJECT
        else:
            os.environ.pop(_EMULATOR_ENV, None)
        with firestore_errors("client set-up"):
            client = firestore.Client(project=project)
            _read_streams_on_calling_thread(client)
            return client
    finally:
        if saved is None:
            os.environ.pop(_EMULATOR_ENV, None)
        else:
            os.environ[_EMULATOR_ENV] = saved


class _CallingThreadStreamsTransport(FirestoreGrpcTransport):
    """The library's gRPC transport, on a channel that reads server streams on the thread that
    iterates them (gRPC's ``SingleThreadedUnaryStream`` channel option).

    By default gRPC hands every streamed message from its polling thread to the reader thread:
    two thread switches and a lock per message, which cost more than decoding the document
    (about 0.2 ms a message, most of a 10,000-document read). The channel is built by the client
    library (credentials, emulator, keep-alive options), so the option is set on it here, before
    the transport creates its stubs. Unary-stream calls (RunQuery, BatchGetDocuments,
    RunAggregationQuery) are all consumed synchronously by the library and by this store.
    """

    def __init__(self, *args: Any, channel: Any = None, **kwargs: Any) -> None:
        if hasattr(channel, _SINGLE_THREADED_ATTR):
            setattr(channel, _SINGLE_THREADED_ATTR, True)
        super().__init__(*args, channel=channel, **kwargs)


# What `grpc.experimental.ChannelOptions.SingleThreadedUnaryStream` sets on a `grpc.Channel`.
_SINGLE_THREADED_ATTR = "_single_threaded_unary_stream"


def _read_streams_on_calling_thread(client: firestore.Client) -> None:
    """Build `client`'s API now, on `_CallingThreadStreamsTransport` (see there). Without the
    library internals this needs, the client keeps its default transport (slower, same results).
    """
    try:
        client._firestore_api_helper(
            _CallingThreadStreamsTransport, gapic_client.FirestoreClient, gapic_client
        )
    except AttributeError:  # pragma: no cover - a library version without the helper
        logger.warning("Firestore client: default gRPC transport (streams read on gRPC's thread)")
