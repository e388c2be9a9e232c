"""Text from outside made safe for any column (brokerops/text.py): what PostgreSQL refuses is
replaced, the length bounded; nothing else changes."""

import pytest

from brokerops.text import REPLACEMENT, db_json, db_text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        ("upstream said \x00 oops", f"upstream said {REPLACEMENT} oops"),
        ("lone \ud800 surrogate", f"lone {REPLACEMENT} surrogate"),
        ("é ü 😀 \t tab", "é ü 😀 \t tab"),
        ("", ""),
        (None, ""),
        (42, "42"),
    ],
)
def test_db_text_replaces_what_the_database_refuses(value, expected):
    assert db_text(value) == expected


def test_db_text_bounds_to_the_column():
    assert db_text("x" * 40, max_length=32) == "x" * 31 + "…"
    assert len(db_text("\x00" * 40, max_length=32)) == 32
    assert db_text("short", max_length=32) == "short"


def test_db_json_cleans_every_string_keys_included():
    value = {"sym\x00bol": ["A\x00", {"n": 1, "ok": True, "none": None, "s": "\ud800"}]}
    assert db_json(value) == {
        f"sym{REPLACEMENT}bol": [
            f"A{REPLACEMENT}",
            {"n": 1, "ok": True, "none": None, "s": REPLACEMENT},
        ]
    }
    clean = {"a": ["b", {"c": 1}]}
    assert db_json(clean) is clean  # nothing to clean: the same object, no copy
