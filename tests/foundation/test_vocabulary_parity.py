"""The vocabulary the project shares with Alpaca and with its paper broker, one test per word.

The paper broker (`brokerops.sim`) imports nothing of the project (it stands for Alpaca), and
the two outside doors (`brokerops.alpaca`, `brokerops.intent`) do not import each other, so some
words are written more than once. Each test names every copy of its word: a value added to one
copy and not to the others fails here, not in production.
"""

from brokerops import fields
from brokerops.alpaca import types as alpaca_types
from brokerops.intent import signal_model
from brokerops.sim import validation as sim_validation
from orders import client_order_id, validation
from orders.models import OrderAttempt
from reconciliation import diff
from reconciliation.models import Mismatch


def _values(choices) -> frozenset[str]:
    return frozenset(str(member) for member in choices)


def test_order_sides_are_one_set_everywhere():
    copies = {
        "brokerops/alpaca/types.py ORDER_SIDES": alpaca_types.ORDER_SIDES,
        "brokerops/sim/validation.py SIDES": sim_validation.SIDES,
        "orders/models.py OrderAttempt.Side": _values(OrderAttempt.Side),
        "brokerops/intent/signal_model.py Side": _values(signal_model.Side),
    }
    assert set(map(frozenset, copies.values())) == {frozenset({"buy", "sell"})}, copies


def test_order_types_are_one_set_everywhere():
    every = frozenset({"market", "limit", "stop", "stop_limit", "trailing_stop"})
    copies = {
        "brokerops/alpaca/types.py ORDER_TYPES": alpaca_types.ORDER_TYPES,
        "brokerops/sim/validation.py ORDER_TYPES": sim_validation.ORDER_TYPES,
        "orders/models.py OrderAttempt.OrderType": _values(OrderAttempt.OrderType),
    }
    assert set(map(frozenset, copies.values())) == {every}, copies
    # A signal asks for the types brokerops builds (no trailing stop); each is Alpaca's.
    assert _values(signal_model.OrderType) == every - {"trailing_stop"}
    assert set(validation.PRICED_TYPES) <= every
    assert every >= sim_validation.CRYPTO_ORDER_TYPES


def test_times_in_force_are_one_set_everywhere():
    copies = {
        "brokerops/alpaca/types.py TIMES_IN_FORCE": alpaca_types.TIMES_IN_FORCE,
        "brokerops/intent/signal_model.py TIME_IN_FORCE_VALUES": (
            signal_model.TIME_IN_FORCE_VALUES
        ),
        "brokerops/sim/validation.py TIMES_IN_FORCE": sim_validation.TIMES_IN_FORCE,
    }
    assert set(copies.values()) == {frozenset({"day", "gtc", "opg", "cls", "ioc", "fok"})}, copies
    crypto = {
        "orders/validation.py CRYPTO_TIF": validation.CRYPTO_TIF,
        "brokerops/sim/validation.py CRYPTO_TIMES_IN_FORCE": sim_validation.CRYPTO_TIMES_IN_FORCE,
    }
    assert set(crypto.values()) == {frozenset({"gtc", "ioc"})}, crypto


def test_the_client_order_id_limit_is_alpacas_128_everywhere():
    copies = {
        "brokerops/fields.py CLIENT_ORDER_ID_MAX (the definition)": fields.CLIENT_ORDER_ID_MAX,
        "brokerops/alpaca/types.py MAX_CLIENT_ORDER_ID": alpaca_types.MAX_CLIENT_ORDER_ID,
        "orders/client_order_id.py MAX_LENGTH": client_order_id.MAX_LENGTH,
        "brokerops/sim/validation.py MAX_CLIENT_ORDER_ID": sim_validation.MAX_CLIENT_ORDER_ID,
        "OrderAttempt.client_order_id": OrderAttempt._meta.get_field("client_order_id").max_length,
        "Mismatch.client_order_id": Mismatch._meta.get_field("client_order_id").max_length,
    }
    assert set(copies.values()) == {128}, copies


def test_severities_are_one_set_for_findings_and_their_rows():
    copies = {
        "reconciliation/diff.py Severity": _values(diff.Severity),
        "reconciliation/models.py Mismatch.Severity": _values(Mismatch.Severity),
    }
    assert set(copies.values()) == {frozenset({"info", "warning", "critical"})}, copies
