"""Evidence packs (docs/design.md section 19): built by ``manage.py evidence``, checked offline by
``manage.py verify_evidence``, which names each thing that does not match."""

import csv
import io
import json
import zipfile
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from audit.models import AccessRecord
from audit.services import audit_verify, chain_heads_record
from evidence.check import evidence_check
from evidence.scope import MAX_RANGE_DAYS
from orders.models import OrderEvent
from tests import factories

pytestmark = pytest.mark.django_db
KEY = "evidence-test-key-0123456789abcdef"
COID = "bo-sigZ-entry"


@pytest.fixture(autouse=True)
def key(settings):
    settings.AUDIT_HMAC_KEY = KEY


@pytest.fixture
def order():
    attempt = factories.order_attempt(client_order_id=COID, account="default")
    factories.order_event(attempt=attempt)
    factories.order_event(
        attempt=attempt, kind=OrderEvent.Kind.STATUS_CHANGED, message='=HYPERLINK("x")'
    )
    factories.mismatch(client_order_id=COID, expected_qty=Decimal("-5"), detail="+1 share short")
    other = factories.order_attempt(client_order_id="bo-other-entry")
    factories.order_event(attempt=other)
    chain_heads_record(recorded_by="test")
    audit_verify(trigger="command", processes=1)
    return attempt


def build(tmp_path, *args) -> str:
    path = str(tmp_path / "pack.zip")
    call_command("evidence", *args, "-o", path, stdout=io.StringIO())
    return path


def read_csv(path: str, name: str) -> list[list[str]]:
    with zipfile.ZipFile(path) as archive:
        return list(csv.reader(io.StringIO(archive.read(name).decode())))


def rewrite(path: str, name: str, data: bytes, *, drop: str = "") -> None:
    """Replace one file of the pack (a tamperer's edit), keeping the others as they are."""
    with zipfile.ZipFile(path) as archive:
        files = {n: archive.read(n) for n in archive.namelist() if n != drop}
    files[name] = data
    with zipfile.ZipFile(path, "w") as archive:
        for n, content in files.items():
            archive.writestr(n, content)


def test_a_pack_of_one_order_holds_its_rows_hashes_heads_and_verification(tmp_path, order):
    path = build(tmp_path, "--order", COID)
    assert evidence_check(path, key=KEY) == []
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
        report = archive.read("report.html").decode()
        verification = json.loads(archive.read("verification.json"))
    assert names == {
        "attempts.csv",
        "order_events.csv",
        "order_executions.csv",
        "mismatches.csv",
        "run_events.csv",
        "breaks.csv",
        "break_events.csv",
        "heads.csv",
        "verification.json",
        "report.html",
        "manifest.json",
        "manifest.sig",
    }
    rows = {f["name"]: f.get("rows") for f in manifest["files"]}
    assert rows["attempts.csv"] == 1 and rows["order_events.csv"] == 2
    assert rows["mismatches.csv"] == 1
    events = read_csv(path, "order_events.csv")
    assert events[0][-3:] == ["prev_hash", "hash", "hashed_values"]
    assert [r[-2] for r in events[1:]] == list(
        OrderEvent.objects.filter(attempt=order).order_by("pk").values_list("hash", flat=True)
    )
    # Formula-looking cells are inert; numbers stay numbers.
    message = events[0].index("message")
    assert events[2][message] == '\'=HYPERLINK("x")'
    mismatch = read_csv(path, "mismatches.csv")
    assert mismatch[1][mismatch[0].index("expected_qty")] == "-5"
    heads = read_csv(path, "heads.csv")
    assert any(r[0] == "order_events" and r[1] == "covers the pack's rows" and r[5] for r in heads)
    assert verification["ok"] is True and "intact" in verification["headline"]
    assert COID in report and "order events" in report
    record = AccessRecord.objects.get(what="evidence")
    assert record.object_id == COID


def test_an_unknown_order_is_refused_and_nothing_written(tmp_path):
    with pytest.raises(CommandError, match="no order attempt has client order id 'bo-none'"):
        build(tmp_path, "--order", "bo-none")
    assert list(tmp_path.iterdir()) == []


def test_a_range_over_the_limit_is_refused_naming_it(tmp_path):
    with pytest.raises(CommandError, match=f"at most {MAX_RANGE_DAYS} days"):
        build(tmp_path, "--from", "2016-01-01", "--to", "2026-01-01")
    assert list(tmp_path.iterdir()) == []


def test_no_key_no_pack(tmp_path, order, settings):
    settings.AUDIT_HMAC_KEY = None
    with pytest.raises(CommandError, match="set AUDIT_HMAC_KEY"):
        build(tmp_path, "--order", COID)
    assert list(tmp_path.iterdir()) == []


def test_a_day_of_one_account(tmp_path, order):
    today = datetime.now(UTC).date().isoformat()
    path = build(tmp_path, "--from", today, "--to", today, "--account", "default")
    assert evidence_check(path, key=KEY) == []
    attempts = read_csv(path, "attempts.csv")
    assert {r[2] for r in attempts[1:]} == {COID, "bo-other-entry"}
    assert len(read_csv(path, "order_events.csv")) == 4
    elsewhere = build(tmp_path, "--from", today, "--to", today, "--account", "nobody")
    assert len(read_csv(elsewhere, "attempts.csv")) == 1  # the header only


def _edit_cell(path: str) -> None:
    rows = read_csv(path, "order_events.csv")
    rows[1][rows[0].index("status_to")] = "filled"
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    rewrite(path, "order_events.csv", out.getvalue().encode())


def test_verify_evidence_names_an_edited_cell(tmp_path, order):
    path = build(tmp_path, "--order", COID)
    _edit_cell(path)
    problems = evidence_check(path, key=KEY)
    assert any(p.startswith("order_events.csv: SHA-256") for p in problems), problems
    assert any("row 1" in p and "column status_to" in p and "edited" in p for p in problems)


def test_verify_evidence_names_a_removed_row(tmp_path, order):
    path = build(tmp_path, "--order", COID)
    rows = read_csv(path, "order_events.csv")
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows[:-1])
    rewrite(path, "order_events.csv", out.getvalue().encode())
    problems = evidence_check(path, key=KEY)
    assert "order_events.csv: 1 rows, the manifest says 2 (rows removed or added)" in problems


def test_verify_evidence_names_a_forged_manifest_and_another_key(tmp_path, order):
    path = build(tmp_path, "--order", COID)
    _edit_cell(path)
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        data = archive.read("order_events.csv")
    import hashlib

    for entry in manifest["files"]:  # the tamperer fixes the manifest too
        if entry["name"] == "order_events.csv":
            entry["sha256"], entry["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    rewrite(path, "manifest.json", json.dumps(manifest).encode())
    problems = evidence_check(path, key=KEY)
    assert problems[0].startswith("manifest.json: its signature does not match AUDIT_HMAC_KEY")
    assert evidence_check(build(tmp_path, "--order", COID), key="another-key")[0].startswith(
        "manifest.json: its signature does not match"
    )


def test_verify_evidence_names_an_extra_file_and_a_truncated_zip(tmp_path, order):
    path = build(tmp_path, "--order", COID)
    rewrite(path, "notes.txt", b"trust me")
    assert evidence_check(path, key=KEY) == ["notes.txt: an extra file the manifest does not list"]
    path = build(tmp_path, "--order", COID)
    with open(path, "rb") as pack:
        data = pack.read()
    with open(path, "wb") as pack:
        pack.write(data[: len(data) // 2])
    (problem,) = evidence_check(path, key=KEY)
    assert "not a readable zip (truncated or damaged)" in problem


def test_the_command_exits_1_naming_the_problems(tmp_path, order):
    path = build(tmp_path, "--order", COID)
    out = io.StringIO()
    call_command("verify_evidence", path, stdout=out)
    assert "intact" in out.getvalue()
    _edit_cell(path)
    err = io.StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("verify_evidence", path, stderr=err)
    assert raised.value.returncode == 1
    assert "column status_to" in err.getvalue()
