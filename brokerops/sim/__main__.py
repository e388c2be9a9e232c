"""Run the paper broker from the command line until interrupted.

    python -m brokerops.sim --port 8765 --scenario demo --rate-limit-per-min 200 \\
        --key test-key:test-secret --fault seed=7 --fault reset_after_rate=0.05

``--fault`` takes any :class:`~brokerops.sim.faults.FaultConfig` field as ``name=value``
(``routes``/``methods``/``status_5xx`` as comma lists). The broker prints its base URL on stdout and
stops cleanly on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
from collections.abc import Sequence

from .broker import PaperBroker
from .faults import FaultConfig
from .scenarios import SCENARIOS


def _fault_config(pairs: Sequence[str]) -> FaultConfig | None:
    if not pairs:
        return None
    types = {f.name: f.type for f in dataclasses.fields(FaultConfig)}
    values: dict[str, object] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name = name.strip()
        if not sep or name not in types:
            raise SystemExit(f"--fault expects NAME=VALUE with NAME one of {sorted(types)}")
        kind = str(types[name])
        if "tuple" in kind:
            items = tuple(item.strip() for item in text.split(",") if item.strip())
            values[name] = tuple(int(i) for i in items) if name == "status_5xx" else items
        elif kind.startswith("int"):
            values[name] = int(text)
        else:
            values[name] = float(text)
    return FaultConfig(**values)  # type: ignore[arg-type]


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m brokerops.sim",
        description="Alpaca Trading API v2 compatible paper broker on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="default")
    parser.add_argument("--rate-limit-per-min", type=int, default=None)
    parser.add_argument(
        "--key", action="append", default=[], help="KEY_ID:SECRET (default test-key:test-secret)"
    )
    parser.add_argument("--fault", action="append", default=[], help="FaultConfig NAME=VALUE")
    args = parser.parse_args(argv)

    broker = PaperBroker(
        keys=_keys(args.key),
        host=args.host,
        port=args.port,
        rate_limit_per_min=args.rate_limit_per_min,
        faults=_fault_config(args.fault),
    )
    SCENARIOS[args.scenario](broker)
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    broker.start()
    print(f"brokerops.sim serving {broker.base_url} (scenario {args.scenario})", flush=True)
    try:
        done.wait()
    finally:
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
