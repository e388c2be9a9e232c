"""The paper broker's shape: modules of a readable size (a market, an order book, an account,
a fill model, a matching engine behind the book), whose parts talk through public methods: the
server asks the broker, nothing reaches into another object's private fields."""

from __future__ import annotations

import ast
from pathlib import Path

import brokerops.sim

SIM = Path(brokerops.sim.__file__).parent
MAX_LINES = 500


def _modules() -> list[Path]:
    return sorted(SIM.glob("*.py"))


def private_reaches(source: str) -> list[str]:
    """``obj._name`` where ``obj`` is not ``self`` or ``cls``: one object reaching into another's
    private state (dunders and ``_``-prefixed module names excepted)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Attribute):
            continue
        name = node.attr
        if not name.startswith("_") or name.startswith("__"):
            continue
        owner = node.value
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_of_the_paper_broker_is_over_500_lines() -> None:
    sizes = {path.name: len(path.read_text().splitlines()) for path in _modules()}
    assert {name: size for name, size in sizes.items() if size > MAX_LINES} == {}


def test_no_part_of_the_paper_broker_reaches_into_another_s_private_fields() -> None:
    reaches = {path.name: private_reaches(path.read_text()) for path in _modules()}
    assert {name: found for name, found in reaches.items() if found} == {}


def test_the_check_sees_a_reach_into_private_fields() -> None:
    source = "def f(broker):\n    broker._count('GET', '/v2/orders')\n    self._ok = 1\n"
    assert private_reaches(source) == ["line 2: broker._count"]
