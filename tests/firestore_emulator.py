"""Google's Cloud Firestore emulator as a session fixture (a pytest plugin of the root conftest).

Started once per session on a free port in its own process group, ready after a first real call
through the client, stopped by its process group (the start script runs Java as a child).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from brokerops.intent.firestore import FirestoreSignalStore
from brokerops.intent.firestore_client import firestore_client
from tests.conftest import require_service
from tests.ports import free_port

EMULATOR_PROJECT = "brokerops-test"
EMULATOR_SCRIPT = "platform/cloud-firestore-emulator/cloud_firestore_emulator"
EMULATOR_START_TIMEOUT_S = 60


@dataclasses.dataclass(frozen=True)
class FirestoreEmulator:
    host: str  # "127.0.0.1:PORT", the FIRESTORE_EMULATOR_HOST form
    project: str

    def clear(self) -> None:
        """Delete every document of the project (the emulator's reset endpoint)."""
        url = (
            f"http://{self.host}/emulator/v1/projects/{self.project}/databases/(default)/documents"
        )
        request = urllib.request.Request(url, method="DELETE")
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            assert response.status == 200, response.status


def _emulator_command(port: int) -> list[str]:
    """The emulator's own start script (fast), else ``gcloud emulators firestore start``."""
    roots = [Path("/usr/lib/google-cloud-sdk")]
    gcloud = shutil.which("gcloud")
    if gcloud:
        roots.insert(0, Path(os.path.realpath(gcloud)).parent.parent)
    for root in roots:
        script = root / EMULATOR_SCRIPT
        if script.exists():
            return [str(script), "start", "--host=127.0.0.1", f"--port={port}"]
    if gcloud:
        return [
            gcloud,
            "emulators",
            "firestore",
            "start",
            f"--host-port=127.0.0.1:{port}",
            f"--project={EMULATOR_PROJECT}",
        ]
    require_service(
        "Firestore emulator",
        f"not installed (no gcloud, no {EMULATOR_SCRIPT}): install the Google Cloud CLI with "
        "its Firestore emulator",
    )
    raise AssertionError("unreachable")


def _wait_until_ready(process: subprocess.Popen, host: str, log_path: Path) -> None:
    deadline = time.monotonic() + EMULATOR_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"http://{host}/", timeout=1) as response:
                if response.status == 200:
                    # A first real call through the client, as the store makes it.
                    client = firestore_client(project=EMULATOR_PROJECT, emulator_host=host)
                    list(client.collection("readiness").limit(1).stream(timeout=10))
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    log = log_path.read_text(errors="replace")[-4000:]
    raise EmulatorFailed(
        f"the Firestore emulator did not start on {host} "
        f"(exit code {process.poll()}); its log:\n{log}"
    )


class EmulatorFailed(Exception):
    """The emulator is installed but could not be started."""


@contextlib.contextmanager
def running_emulator(log_path: Path) -> Iterator[FirestoreEmulator]:
    """Start an emulator on a free port (its log in ``log_path``), stop it on exit. Raises
    :class:`EmulatorFailed`; a missing installation goes through ``require_service``."""
    port = free_port()
    host = f"127.0.0.1:{port}"
    with log_path.open("wb") as log:
        try:
            process = subprocess.Popen(
                _emulator_command(port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise EmulatorFailed(f"cannot start the Firestore emulator: {exc}") from exc
        try:
            _wait_until_ready(process, host, log_path)
            yield FirestoreEmulator(host=host, project=EMULATOR_PROJECT)
        finally:
            _stop_process_group(process)


@pytest.fixture(scope="session")
def firestore_emulator(tmp_path_factory) -> Iterator[FirestoreEmulator]:
    """A Firestore emulator for the whole session. Not installed: skipped, or failed on CI
    (``BROKEROPS_REQUIRE_SERVICES=1``); installed but not starting: always a failure."""
    log_path = tmp_path_factory.mktemp("firestore-emulator") / "emulator.log"
    try:
        with running_emulator(log_path) as emulator:
            yield emulator
    except EmulatorFailed as exc:
        pytest.fail(str(exc), pytrace=False)


def _stop_process_group(process: subprocess.Popen) -> None:
    """The start script runs Java as a child: signal the whole group, then reap."""
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def firestore_store(firestore_emulator) -> FirestoreSignalStore:
    """An empty Firestore signal store on the session's emulator."""
    firestore_emulator.clear()
    client = firestore_client(
        project=firestore_emulator.project, emulator_host=firestore_emulator.host
    )
    return FirestoreSignalStore(client, "signals")
