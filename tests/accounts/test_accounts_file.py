"""Accounts as configuration (docs/design.md section 16): the TOML file, checked at start."""

import subprocess
import sys
from pathlib import Path

import pytest

from brokerops.accounts import DEFAULT_ACCOUNT, AccountsError, load_accounts, single_account
from tests.environment import child_env

ROOT = Path(__file__).resolve().parents[2]
KEYS = {
    "KEY_A": "key-a",
    "SECRET_A": "secret-a",
    "KEY_B": "key-b",
    "SECRET_B": "secret-b",
}
GOOD = """
[accounts.desk-a]
key_env = "KEY_A"
secret_env = "SECRET_A"
client_order_id_prefix = "da"
rate_limit_per_min = 150
default = true

[accounts.client-7]
key_env = "KEY_B"
secret_env = "SECRET_B"
paper = false
base_url = "http://127.0.0.1:9999"
stream_url = "ws://127.0.0.1:9999/stream"
client_order_id_prefix = "c7"
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "accounts.toml"
    path.write_text(text)
    return str(path)


def load(tmp_path: Path, text: str, environ=KEYS):
    return load_accounts(write(tmp_path, text), environ, rate_limit_per_min=200)


def test_a_good_file_gives_every_account_in_order(tmp_path):
    accounts = load(tmp_path, GOOD)
    assert accounts.names == ["desk-a", "client-7"]
    desk, client = accounts
    assert (desk.api_key, desk.secret_key, desk.rate_limit_per_min) == ("key-a", "secret-a", 150)
    assert desk.paper and desk.default and accounts.default is desk
    assert (client.paper, client.base_url, client.rate_limit_per_min) == (
        False,
        "http://127.0.0.1:9999",
        200,  # the deployment's budget when the account sets none
    )
    assert client.stream_url == "ws://127.0.0.1:9999/stream"
    assert "secret-b" not in repr(client) and "key-b" not in repr(client)


def test_signals_without_an_account_belong_to_the_default_and_unknown_ones_to_none(tmp_path):
    accounts = load(tmp_path, GOOD)
    assert accounts.owner(None) == "desk-a"
    assert accounts.owner("") == "desk-a"
    assert accounts.owner("client-7") == "client-7"
    assert accounts.owner("desk-b") is None
    assert accounts.rows_owner == "desk-a"
    with pytest.raises(KeyError, match=r"no account 'desk-b' \(accounts: desk-a, client-7\)"):
        accounts.get("desk-b")


def test_without_a_default_a_signal_must_name_its_account(tmp_path):
    accounts = load(tmp_path, GOOD.replace("default = true\n", ""))
    assert accounts.default is None
    assert accounts.owner(None) is None
    assert accounts.owner("client-7") == "client-7"
    assert accounts.rows_owner == "desk-a"  # rows from before accounts: the first listed


def test_no_file_is_one_default_account_of_the_alpaca_variables():
    accounts = single_account(
        api_key=None,
        secret_key=None,
        paper=True,
        base_url=None,
        data_url=None,
        stream_url=None,
        client_order_id_prefix="bo",
        rate_limit_per_min=200,
    )
    assert accounts.names == [DEFAULT_ACCOUNT]
    assert accounts.default.client_order_id_prefix == "bo"
    assert accounts.owner(None) == DEFAULT_ACCOUNT


BAD = [
    (GOOD.replace("[accounts.desk-a]", "[accounts.Desk_A]"), "account 'Desk_A': the name must"),
    (GOOD.replace("[accounts.desk-a]", "[accounts.d" + "x" * 32 + "]"), "the name must be 1 to 32"),
    (
        GOOD.replace("rate_limit_per_min = 150", "rate_limit = 150"),
        "account 'desk-a': field 'rate_limit': unknown field",
    ),
    (
        GOOD.replace('"c7"', '"DA"'),
        "account 'client-7': field 'client_order_id_prefix': the same prefix as account 'desk-a'",
    ),
    (
        GOOD.replace('"c7"', '"c-7"'),
        "account 'client-7': field 'client_order_id_prefix': must be 1 to 16",
    ),
    (
        GOOD.replace('"KEY_B"', '"KEY_A"'),
        "account 'client-7': field 'key_env': the same API key as account 'desk-a'",
    ),
    (
        GOOD.replace('"c7"\n', '"c7"\ndefault = true\n'),
        "account 'client-7': field 'default': the default too",
    ),
    (
        GOOD.replace('"KEY_B"', '"KEY_MISSING"'),
        "account 'client-7': field 'key_env': the environment variable KEY_MISSING is not set",
    ),
    (
        GOOD.replace('secret_env = "SECRET_B"\n', ""),
        "account 'client-7': field 'secret_env': missing",
    ),
    (
        GOOD.replace("paper = false", 'paper = "no"'),
        "account 'client-7': field 'paper': must be a bool, not 'no'",
    ),
    (
        GOOD.replace("rate_limit_per_min = 150", "rate_limit_per_min = true"),
        "field 'rate_limit_per_min': must be a int",
    ),
    (
        GOOD.replace("rate_limit_per_min = 150", "rate_limit_per_min = 0"),
        "field 'rate_limit_per_min': must be from 1 to 100000, not 0",
    ),
    (
        GOOD.replace('"http://127.0.0.1:9999"', '"127.0.0.1:9999"'),
        "account 'client-7': field 'base_url': not a URL",
    ),
    ("[accounts]\n", "no account"),
    ("[desks.a]\nx = 1\n", "unknown table 'desks'"),
    ("[accounts.a\n", "not TOML"),
    ("[accounts]\na = 1\n", "account 'a': must be a table"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_a_bad_file_names_the_account_and_the_field(tmp_path, text, message):
    with pytest.raises(AccountsError) as caught:
        load(tmp_path, text)
    line = str(caught.value)
    assert message in line
    assert "\n" not in line
    assert line.startswith(f"ACCOUNTS_FILE {tmp_path / 'accounts.toml'}: ")


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(AccountsError, match="cannot be read"):
        load_accounts(str(tmp_path / "nope.toml"), KEYS, rate_limit_per_min=200)


def test_a_bad_file_stops_the_start_with_one_line(tmp_path):
    path = write(tmp_path, GOOD.replace('"c7"', '"da"'))
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check"],
        cwd=tmp_path,
        env=child_env(ACCOUNTS_FILE=path, **KEYS),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "account 'client-7': field 'client_order_id_prefix': the same prefix" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_good_file_is_what_the_settings_hold(tmp_path):
    probe = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.ACCOUNTS.names)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env=child_env(
            ACCOUNTS_FILE=write(tmp_path, GOOD), DJANGO_SETTINGS_MODULE="brokerops.settings", **KEYS
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['desk-a', 'client-7']"
