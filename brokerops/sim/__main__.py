"""Run the paper broker from the command line until interrupted.

    python -m brokerops.sim --port 8765 --scenario demo --strict --fill-delay-s 0.05 \\
        --key test-key:test-secret --fault seed=7 --fault reset_after_rate=0.05 \\
        --account desk=desk-key:desk-secret --account client-key:client-secret

Fidelity (see ``fidelity.py``): ``--strict`` or ``--lenient`` picks the profile (neither: the
default profile, which is strict like Alpaca), and each rule can be set on top:
``--fill-delay-s S``, ``--crypto-fee-bps N``, ``--[no-]crypto-rules``, ``--crypto-min-cost USD``,
``--[no-]reserve-buying-power``, ``--[no-]wash-trade-check``, ``--rate-limit-per-min N`` (0: off),
``--[no-]retry-after-header``.
``--fault`` takes any :class:`~brokerops.sim.faults.FaultConfig` field as ``name=value``
(``routes``/``methods``/``status_5xx`` as comma lists); ``--stream-fault`` any
:class:`~brokerops.sim.faults.StreamFaultConfig` field, for the trade_updates stream at
``/stream`` (``--stream-fault seed=7 --stream-fault drop_rate=0.05 --stream-fault
drop_after_events=20``). The broker prints its base URL on stdout and stops cleanly on SIGINT or
SIGTERM.

Accounts (docs/design.md section 16): ``--key`` pairs open the first account, which the scenario
seeds; each ``--account [NAME=]KEY_ID:SECRET`` serves one more account under its own key pair,
with a book of its own (empty: no positions, no orders, the default cash), its own rate window,
its own trade_updates stream, on the same market (the scenario's assets and prices). The rules,
the rate limit and the faults of the command line hold for every account.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
from collections.abc import Sequence
from decimal import Decimal
from typing import TypeVar

from .broker import PaperBroker
from .faults import FaultConfig, StreamFaultConfig
from .fidelity import LENIENT, PROFILE, STRICT
from .scenarios import SCENARIOS

_Config = TypeVar("_Config", FaultConfig, StreamFaultConfig)


def _fault_config(
    config: type[_Config], pairs: Sequence[str], option: str = "--fault"
) -> _Config | None:
    """``config`` built from ``NAME=VALUE`` pairs (None without any)."""
    if not pairs:
        return None
    types = {f.name: f.type for f in dataclasses.fields(config)}
    values: dict[str, object] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or name not in types:
            raise SystemExit(f"{option} expects NAME=VALUE with NAME one of {sorted(types)}")
        kind = str(types[name])
        if "tuple" in kind:
            items = tuple(item.strip() for item in text.split(",") if item.strip())
            values[name] = tuple(int(i) for i in items) if name == "status_5xx" else items
        elif kind.startswith("int"):
            values[name] = int(text)
        else:
            values[name] = float(text)
    return config(**values)  # type: ignore[arg-type]


def _keys(pairs: Sequence[str]) -> dict[str, str] | None:
    if not pairs:
        return None
    keys: dict[str, str] = {}
    for pair in pairs:
        key, sep, secret = pair.partition(":")
        if not sep or not key or not secret:
            raise SystemExit("--key expects KEY_ID:SECRET")
        keys[key] = secret
    return keys


def _accounts(specs: Sequence[str]) -> list[tuple[str | None, str, str]]:
    """``(name or None, key, secret)`` of each ``--account [NAME=]KEY_ID:SECRET``."""
    accounts = []
    for spec in specs:
        head, colon, secret = spec.partition(":")  # the secret may hold ":" or "="
        name, sep, key = head.rpartition("=")
        if (sep and not name) or not colon or not key or not secret:
            raise SystemExit("--account expects [NAME=]KEY_ID:SECRET")
        accounts.append((name or None, key, secret))
    return accounts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m brokerops.sim",
        description="Alpaca Trading API v2 compatible paper broker on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="default")
    profile = parser.add_mutually_exclusive_group()
    profile.add_argument("--strict", dest="strict", action="store_const", const=True)
    profile.add_argument("--lenient", dest="strict", action="store_const", const=False)
    parser.add_argument("--fill-delay-s", type=float, default=PROFILE)
    parser.add_argument("--crypto-fee-bps", type=Decimal, default=PROFILE)
    parser.add_argument("--crypto-rules", action=argparse.BooleanOptionalAction, default=PROFILE)
    parser.add_argument("--crypto-min-cost", type=Decimal, default=PROFILE)
    parser.add_argument(
        "--reserve-buying-power", action=argparse.BooleanOptionalAction, default=PROFILE
    )
    parser.add_argument(
        "--wash-trade-check", action=argparse.BooleanOptionalAction, default=PROFILE
    )
    parser.add_argument(
        "--rate-limit-per-min", type=int, default=PROFILE, help="requests per minute; 0: off"
    )
    parser.add_argument(
        "--retry-after-header", action=argparse.BooleanOptionalAction, default=PROFILE
    )
    parser.add_argument(
        "--key", action="append", default=[], help="KEY_ID:SECRET (default test-key:test-secret)"
    )
    parser.add_argument(
        "--account",
        action="append",
        default=[],
        help="[NAME=]KEY_ID:SECRET: one more account, with a book of its own (repeatable)",
    )
    parser.add_argument("--fault", action="append", default=[], help="FaultConfig NAME=VALUE")
    parser.add_argument(
        "--stream-fault",
        action="append",
        default=[],
        help="StreamFaultConfig NAME=VALUE (the trade_updates stream)",
    )
    return parser


def broker_from_args(argv: Sequence[str] | None = None) -> tuple[PaperBroker, str]:
    """The (not yet started) broker the command line describes, with its scenario applied, and
    the scenario's name."""
    args = _parser().parse_args(argv)
    rate = args.rate_limit_per_min
    broker = PaperBroker(
        keys=_keys(args.key),
        host=args.host,
        port=args.port,
        strict=args.strict,
        fill_delay_s=args.fill_delay_s,
        crypto_fee_bps=args.crypto_fee_bps,
        crypto_rules=args.crypto_rules,
        crypto_min_cost=args.crypto_min_cost,
        reserve_buying_power=args.reserve_buying_power,
        wash_trade_check=args.wash_trade_check,
        rate_limit_per_min=None if rate == 0 else rate,
        retry_after_header=args.retry_after_header,
        faults=_fault_config(FaultConfig, args.fault),
        stream_faults=_fault_config(StreamFaultConfig, args.stream_fault, "--stream-fault"),
    )
    try:
        for name, key, secret in _accounts(args.account):
            broker.add_account(key, secret, name=name)
    except ValueError as error:  # a key two accounts share, or a name used twice
        raise SystemExit(f"--account: {error}") from None
    SCENARIOS[args.scenario](broker)
    return broker, args.scenario


def main(argv: Sequence[str] | None = None) -> int:
    broker, scenario = broker_from_args(argv)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    broker.start()
    names = {STRICT: "strict", LENIENT: "lenient"}
    strictness = names.get(broker.fidelity, "custom fidelity")
    accounts = len(broker.accounts())
    print(
        f"brokerops.sim serving {broker.base_url} (scenario {scenario}, {strictness},"
        f" {accounts} account{'s' if accounts > 1 else ''})",
        flush=True,
    )
    try:
        done.wait()
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
