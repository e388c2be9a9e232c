"""Every numeric setting is checked at start against its bounds (docs/configuration.md): a bad
value is one clear line naming the variable and the range, and the command exits non-zero,
never a traceback, a silent skip or an overflow."""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_FILE = ROOT / "brokerops" / "settings.py"


def manage(tmp_path: Path, *args: str, **env_vars: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and k != "REDIS_URL"}
    env.update(env_vars, PYTHONPATH=str(ROOT))
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ORDER_BATCH_SIZE", "-1"),  # skipped the last signal every cycle
        ("ORDER_BATCH_SIZE", "0"),
        ("RECONCILE_ORDER_LOOKBACK_HOURS", "999999999"),  # overflowed a datetime
        ("ALERT_TIMEOUT_S", "nan"),
        ("ALPACA_TIMEOUT_S", "inf"),
        ("ALPACA_RATE_LIMIT_PER_MIN", "1.5"),
        ("RECONCILE_INTERVAL_S", "0"),
        ("WATCH_RECONNECT_MIN_S", "-2"),
        ("CLIENT_ORDER_ID_PREFIX", "bé"),
        ("CLIENT_ORDER_ID_PREFIX", "x" * 17),
    ],
)
def test_a_bad_value_is_one_clear_line_and_the_command_exits_non_zero(tmp_path, name, value):
    done = manage(tmp_path, "reconcile", "--dry-run", **{name: value})

    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert name in lines[0] and "must be" in lines[0] and repr(value) in lines[0]
    assert done.stdout == ""


def load(**env_vars: str) -> dict:
    """The settings module run in this process with ``env_vars`` set (restored after)."""
    saved = {name: os.environ.get(name) for name in env_vars}
    os.environ.update(env_vars)
    try:
        return runpy.run_path(str(SETTINGS_FILE))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_every_numeric_setting_is_read_through_the_bounded_helper():
    source = SETTINGS_FILE.read_text()
    assert not re.findall(r"env\.(?:int|float)\(", source)
    names = load()["NUMERIC_SETTINGS"]
    assert {"ORDER_BATCH_SIZE", "RECONCILE_ORDER_LOOKBACK_HOURS", "ALERT_TIMEOUT_S"} <= set(names)
    assert len(names) >= 30


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e99", "", "ten"])
def test_every_numeric_setting_refuses_what_is_no_number_in_its_range(value):
    for name, (_low, high) in load()["NUMERIC_SETTINGS"].items():
        with pytest.raises(ImproperlyConfigured) as refused:
            load(**{name: value})
        message = str(refused.value)
        assert message.startswith(f"{name} must be ") and f"{high}" in message, message
        assert "\n" not in message


def test_the_defaults_and_the_bounds_themselves_are_accepted():
    """Each bound is a value the setting takes (a pair such as a minimum and its maximum may
    only refuse it for the order between them, and says so)."""
    for name, (low, high) in load()["NUMERIC_SETTINGS"].items():
        for edge in (low, high):
            try:
                load(**{name: str(edge)})
            except ImproperlyConfigured as refused:
                assert re.fullmatch(r"\w+ must be at most \w+ \(.*\), not .*", str(refused))
                assert name in str(refused)
