"""The trading accounts one deployment serves (docs/design.md section 16).

An account is configuration, not a row: the TOML file named by ``ACCOUNTS_FILE`` holds one table
per account (its keys as the *names* of environment variables, never the secrets), and without
that file there is one account, ``default``, made of the ``ALPACA_*`` variables, so a
single-account deployment changes nothing. Every audit row carries its account's name; an account
removed from the file keeps its rows (they are shown, no work is scheduled for it).

The file is read once, when the settings load; a bad file fails the start with one line naming
the account and the field (:class:`AccountsError`). The broker door turns an
:class:`AccountConfig` into a gateway and a stream connection (the paper broker's keys and URL
when an account has none); this module knows nothing of Alpaca.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from django.core.exceptions import ImproperlyConfigured

#: The name of the one account of a deployment without ``ACCOUNTS_FILE``.
DEFAULT_ACCOUNT = "default"
#: An account's name: it is stored on every audit row and shown in URLs and filters.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
NAME_MAX = 32
#: It starts every client_order_id sent to Alpaca (at most 128 characters; a hashed id is the
#: prefix and 48 more, so 16 leaves room) and its "-" separates.
PREFIX_PATTERN = re.compile(r"[A-Za-z0-9]{1,16}")
_FIELDS = {
    "key_env": str,
    "secret_env": str,
    "paper": bool,
    "base_url": str,
    "data_url": str,
    "stream_url": str,
    "client_order_id_prefix": str,
    "rate_limit_per_min": int,
    "default": bool,
}
_RATE_RANGE = (1, 100_000)


class AccountsError(ImproperlyConfigured):
    """The accounts' configuration is wrong: one line naming the account and the field."""


@dataclass(frozen=True)
class AccountConfig:
    """One account: who it is, how to reach its broker, and its share of the broker's budget.

    ``api_key``/``secret_key`` are None for an account without keys (the built-in paper broker's
    are used); the URLs are None where the broker door's defaults apply."""

    name: str
    client_order_id_prefix: str
    rate_limit_per_min: int
    paper: bool = True
    api_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    key_env: str | None = None
    secret_env: str | None = None
    base_url: str | None = None
    data_url: str | None = None
    stream_url: str | None = None
    default: bool = False


@dataclass(frozen=True)
class Accounts:
    """Every configured account, in the file's order; ``default`` is the one signals without an
    ``account`` belong to (None when several accounts name none)."""

    by_name: Mapping[str, AccountConfig]
    from_file: str | None = None

    def __iter__(self) -> Iterator[AccountConfig]:
        return iter(self.by_name.values())

    def __len__(self) -> int:
        return len(self.by_name)

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    @property
    def names(self) -> list[str]:
        return list(self.by_name)

    @property
    def default(self) -> AccountConfig | None:
        return next((a for a in self if a.default), None)

    def get(self, name: str) -> AccountConfig:
        """The account called ``name``; :class:`KeyError` naming the known ones otherwise."""
        try:
            return self.by_name[name]
        except KeyError:
            known = ", ".join(self.by_name) or "none"
            raise KeyError(f"no account {name!r} (accounts: {known})") from None

    def owner(self, account_field: str | None) -> str | None:
        """The account a signal belongs to: its ``account`` field, or the default account when it
        names none; None when it names an unknown account or names none and there is no
        default (the signal is invalid, docs/design.md section 16)."""
        if account_field is None or account_field == "":
            default = self.default
            return default.name if default else None
        return account_field if account_field in self.by_name else None

    @property
    def rows_owner(self) -> str:
        """The account that rows written before accounts existed belong to (the migration's
        default): the default account, else the first listed."""
        default = self.default
        return default.name if default else next(iter(self.by_name))


def single_account(
    *,
    api_key: str | None,
    secret_key: str | None,
    paper: bool,
    base_url: str | None,
    data_url: str | None,
    stream_url: str | None,
    client_order_id_prefix: str,
    rate_limit_per_min: int,
) -> Accounts:
    """The one account of a deployment without ``ACCOUNTS_FILE``, from the ``ALPACA_*``
    settings (today's behaviour)."""
    if bool(api_key) != bool(secret_key):
        raise AccountsError("set both ALPACA_API_KEY and ALPACA_SECRET_KEY, or neither")
    if not PREFIX_PATTERN.fullmatch(client_order_id_prefix):
        raise AccountsError(
            "CLIENT_ORDER_ID_PREFIX must be 1 to 16 ASCII letters or digits, "
            f"not {client_order_id_prefix!r}"
        )
    account = AccountConfig(
        name=DEFAULT_ACCOUNT,
        client_order_id_prefix=client_order_id_prefix,
        rate_limit_per_min=rate_limit_per_min,
        paper=paper,
        api_key=api_key or None,
        secret_key=secret_key or None,
        base_url=base_url,
        data_url=data_url,
        stream_url=stream_url,
        default=True,
    )
    return Accounts({DEFAULT_ACCOUNT: account})


def load_accounts(path: str, environ: Mapping[str, str], *, rate_limit_per_min: int) -> Accounts:
    """The accounts of the TOML file at ``path``; keys are read from ``environ`` by the names
    the file gives. ``rate_limit_per_min`` is the budget of an account that sets none."""
    where = f"ACCOUNTS_FILE {path}"
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise AccountsError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise AccountsError(f"{where}: not TOML ({exc})") from None
    extra = sorted(set(document) - {"accounts"})
    if extra:
        raise AccountsError(f"{where}: unknown table {extra[0]!r} (only [accounts.NAME])")
    tables = document.get("accounts")
    if not isinstance(tables, dict) or not tables:
        raise AccountsError(f"{where}: no account ([accounts.NAME] tables)")
    accounts: dict[str, AccountConfig] = {}
    for name, table in tables.items():
        account = _account(where, name, table, environ, rate_limit_per_min)
        _refuse_clashes(where, account, accounts.values())
        accounts[name] = account
    return Accounts(accounts, from_file=path)


def _account(
    where: str, name: str, table: Any, environ: Mapping[str, str], rate: int
) -> AccountConfig:
    """One ``[accounts.NAME]`` table, checked field by field."""
    if not NAME_PATTERN.fullmatch(name):
        raise AccountsError(
            f"{where}: account {name!r}: the name must be 1 to 32 of a-z, 0-9 and '-' "
            "(starting with a letter or digit)"
        )
    if not isinstance(table, dict):
        raise AccountsError(f"{where}: account {name!r}: must be a table")

    def fail(field_name: str, why: str) -> AccountsError:
        return AccountsError(f"{where}: account {name!r}: field {field_name!r}: {why}")

    for key, value in table.items():
        expected = _FIELDS.get(key)
        if expected is None:
            raise fail(key, f"unknown field (known: {', '.join(_FIELDS)})")
        if type(value) is not expected:  # bool is an int: exact types only
            raise fail(key, f"must be a {expected.__name__}, not {value!r}")
    keys = {}
    for key_field in ("key_env", "secret_env"):
        variable = table.get(key_field)
        if variable is None:
            raise fail(key_field, "missing (the name of an environment variable)")
        if not environ.get(variable):
            raise fail(key_field, f"the environment variable {variable} is not set")
        keys[key_field] = environ[variable]
    prefix = table.get("client_order_id_prefix")
    if prefix is None:
        raise fail("client_order_id_prefix", "missing (1 to 16 ASCII letters or digits)")
    if not PREFIX_PATTERN.fullmatch(prefix):
        raise fail("client_order_id_prefix", f"must be 1 to 16 ASCII letters or digits: {prefix!r}")
    budget = table.get("rate_limit_per_min", rate)
    if not _RATE_RANGE[0] <= budget <= _RATE_RANGE[1]:
        raise fail("rate_limit_per_min", f"must be from 1 to 100000, not {budget}")
    for url_field in ("base_url", "data_url", "stream_url"):
        url = table.get(url_field)
        if url is not None and not re.match(r"(https?|wss?)://[^\s/]+", url):
            raise fail(url_field, f"not a URL: {url!r}")
    return AccountConfig(
        name=name,
        client_order_id_prefix=prefix,
        rate_limit_per_min=budget,
        paper=table.get("paper", True),
        api_key=keys["key_env"],
        secret_key=keys["secret_env"],
        key_env=table["key_env"],
        secret_env=table["secret_env"],
        base_url=table.get("base_url"),
        data_url=table.get("data_url"),
        stream_url=table.get("stream_url"),
        default=table.get("default", False),
    )


def _refuse_clashes(where: str, account: AccountConfig, earlier: Any) -> None:
    """Two accounts never share a prefix (their claim spaces would meet), keys (one stream per
    account: two connections with one key fight) or the default role."""
    for other in earlier:
        clash = None
        if other.client_order_id_prefix.lower() == account.client_order_id_prefix.lower():
            clash = ("client_order_id_prefix", "the same prefix")
        elif other.api_key == account.api_key:
            clash = ("key_env", "the same API key")
        elif other.default and account.default:
            clash = ("default", "the default too (at most one account is)")
        if clash:
            raise AccountsError(
                f"{where}: account {account.name!r}: field {clash[0]!r}: "
                f"{clash[1]} as account {other.name!r}"
            )


def configured() -> Accounts:
    """The accounts of this deployment: the file's (``settings.ACCOUNTS``), else the one account
    of the ``ALPACA_*`` settings as they are now (tests override them one by one)."""
    from django.conf import settings

    if settings.ACCOUNTS_FILE:
        return settings.ACCOUNTS
    return _single_account_of(
        settings.ALPACA_API_KEY,
        settings.ALPACA_SECRET_KEY,
        settings.ALPACA_PAPER,
        settings.ALPACA_BASE_URL,
        settings.ALPACA_DATA_URL,
        settings.ALPACA_STREAM_URL,
        settings.CLIENT_ORDER_ID_PREFIX,
        settings.ALPACA_RATE_LIMIT_PER_MIN,
    )


@lru_cache(maxsize=8)
def _single_account_of(*values: Any) -> Accounts:
    names = ("api_key", "secret_key", "paper", "base_url", "data_url", "stream_url")
    names += ("client_order_id_prefix", "rate_limit_per_min")
    return single_account(**dict(zip(names, values, strict=True)))


def rows_owner_name() -> str:
    """The account of a row that names none: the default account, else the first listed (the
    model fields' default, and what the migration gave the rows written before accounts).
    Without a file it is ``default`` whatever the ``ALPACA_*`` settings hold: a row is still
    written when they are wrong (the run that finds them fails and says so)."""
    from django.conf import settings

    if not settings.ACCOUNTS_FILE:
        return DEFAULT_ACCOUNT
    return settings.ACCOUNTS.rows_owner
