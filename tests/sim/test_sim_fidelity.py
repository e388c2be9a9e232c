"""Fidelity profiles: one place for defaults, a strict switch, every rule an option, the CLI."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
import requests

from brokerops.sim import LENIENT, STRICT, Fidelity, PaperBroker
from brokerops.sim import fidelity as fidelity_module
from brokerops.sim.__main__ import broker_from_args

from .helpers import AUTH, Raw, broker_threads, market


def test_the_default_profile_is_strict_and_every_lenient_value_is_reachable() -> None:
    # By default the paper broker behaves like Alpaca (docs/design.md section 9).
    assert fidelity_module.DEFAULT is STRICT
    assert PaperBroker().fidelity == STRICT
    assert PaperBroker().fidelity.is_strict
    assert PaperBroker().limiter.limit == 200
    # The whole lenient profile, by name and by its values ...
    assert PaperBroker(strict=False).fidelity == LENIENT
    assert PaperBroker(fidelity=LENIENT).fidelity == LENIENT
    assert (
        Fidelity(
            fill_delay_s=0,
            crypto_fee_bps=Decimal(0),
            crypto_rules=False,
            crypto_min_cost=Decimal(1),
            reserve_buying_power=False,
            wash_trade_check=False,
            rate_limit_per_min=None,
            retry_after_header=True,
        )
        == LENIENT
    )
    assert not LENIENT.is_strict
    # ... each lenient value alone on top of the default ...
    lenient_values = {f.name: getattr(LENIENT, f.name) for f in dataclasses.fields(Fidelity)}
    differing = {name for name, value in lenient_values.items() if getattr(STRICT, name) != value}
    assert differing == set(lenient_values) - {"crypto_min_cost"}  # $1 in both
    for name, value in lenient_values.items():
        one = PaperBroker(**{name: value})
        assert one.fidelity == STRICT.replace(**{name: value}), name
        assert one.fidelity.is_strict == (name not in differing), name
    assert PaperBroker(rate_limit_per_min=None).limiter.limit is None
    # ... and all of them as keywords make the lenient profile.
    assert PaperBroker(**lenient_values).fidelity == LENIENT


def test_strict_switch_turns_every_rule_on_with_alpaca_values() -> None:
    broker = PaperBroker(strict=True)
    assert broker.fidelity == STRICT
    assert STRICT.is_strict
    assert (STRICT.fill_delay_s, STRICT.crypto_fee_bps, STRICT.rate_limit_per_min) == (
        0.1,
        Decimal(25),
        200,
    )
    assert STRICT.crypto_rules and STRICT.reserve_buying_power and STRICT.wash_trade_check
    assert STRICT.crypto_min_cost == Decimal(1)
    assert STRICT.retry_after_header is False
    assert broker.limiter.limit == 200
    assert PaperBroker(strict=False).fidelity == LENIENT
    assert PaperBroker(fidelity=STRICT).fidelity == STRICT


def test_single_rules_override_the_profile() -> None:
    instant = PaperBroker(strict=True, fill_delay_s=0, rate_limit_per_min=None)
    assert instant.fidelity == STRICT.replace(fill_delay_s=0, rate_limit_per_min=None)
    assert instant.limiter.limit is None
    assert not instant.fidelity.is_strict
    fee_only = PaperBroker(strict=False, crypto_fee_bps=25)
    assert fee_only.fidelity == LENIENT.replace(crypto_fee_bps=Decimal(25))
    instant_default = PaperBroker(fill_delay_s=0)
    assert instant_default.fidelity == STRICT.replace(fill_delay_s=0)
    limited = PaperBroker(rate_limit_per_min=50)
    assert limited.fidelity == STRICT.replace(rate_limit_per_min=50)
    assert limited.limiter.limit == 50


def test_profiles_and_values_are_checked() -> None:
    with pytest.raises(ValueError, match="strict or fidelity"):
        PaperBroker(strict=True, fidelity=STRICT)
    with pytest.raises(ValueError):
        Fidelity(fill_delay_s=-1)
    with pytest.raises(ValueError):
        Fidelity(crypto_fee_bps=Decimal(10_000))
    with pytest.raises(ValueError):
        Fidelity(rate_limit_per_min=0)


def test_rules_change_while_running(paper_broker: PaperBroker, raw: Raw) -> None:
    assert paper_broker.fidelity == STRICT  # the default
    assert raw.post("/v2/orders", json=market("AAPL", 1)).json()["status"] == "pending_new"
    assert paper_broker.settle(timeout=5)
    paper_broker.set_fidelity(fill_delay_s=0)
    assert raw.post("/v2/orders", json=market("AAPL", 1)).json()["status"] == "filled"
    assert paper_broker.position("AAPL")["qty"] == "2"  # type: ignore[index]
    paper_broker.set_fidelity(fill_delay_s=0.05)
    assert raw.post("/v2/orders", json=market("AAPL", 1)).json()["status"] == "pending_new"
    assert paper_broker.settle(timeout=5)
    assert paper_broker.position("AAPL")["qty"] == "3"  # type: ignore[index]

    assert raw.get("/v2/account").headers["X-RateLimit-Limit"] == "200"
    paper_broker.set_fidelity(LENIENT, wash_trade_check=True)
    assert paper_broker.fidelity == LENIENT.replace(wash_trade_check=True)
    assert "X-RateLimit-Limit" not in raw.get("/v2/account").headers
    paper_broker.set_fidelity(rate_limit_per_min=5)
    assert raw.get("/v2/account").headers["X-RateLimit-Limit"] == "5"
    paper_broker.set_rate_limit(7)
    assert paper_broker.fidelity.rate_limit_per_min == 7
    paper_broker.set_fidelity(STRICT)
    assert paper_broker.fidelity == STRICT
    assert raw.get("/v2/account").headers["X-RateLimit-Limit"] == "200"


def test_strict_broker_restarts_without_leaking_its_fill_thread() -> None:
    before = broker_threads()
    broker = PaperBroker(default_assets=True, strict=True)
    for _ in range(5):
        broker.start()
        assert requests.get(broker.base_url + "/v2/account", headers=AUTH, timeout=5).ok
        broker.stop()
    assert broker_threads() <= before


def test_command_line_profile_and_rule_flags() -> None:
    broker, scenario = broker_from_args(["--strict", "--fill-delay-s", "0", "--scenario", "empty"])
    assert scenario == "empty"
    assert broker.fidelity == STRICT.replace(fill_delay_s=0)

    broker, _ = broker_from_args(
        [
            "--lenient",
            "--crypto-fee-bps",
            "25",
            "--wash-trade-check",
            "--rate-limit-per-min",
            "100",
            "--no-retry-after-header",
        ]
    )
    assert broker.fidelity == LENIENT.replace(
        crypto_fee_bps=Decimal(25),
        wash_trade_check=True,
        rate_limit_per_min=100,
        retry_after_header=False,
    )
    broker, _ = broker_from_args(["--strict", "--rate-limit-per-min", "0", "--no-crypto-rules"])
    assert broker.fidelity == STRICT.replace(rate_limit_per_min=None, crypto_rules=False)
    assert broker_from_args([])[0].fidelity == fidelity_module.DEFAULT == STRICT
    assert broker_from_args(["--lenient"])[0].fidelity == LENIENT
    with pytest.raises(SystemExit):
        broker_from_args(["--strict", "--lenient"])
