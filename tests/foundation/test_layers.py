"""The house's floors hold (docs/design.md section 1): import-linter's contracts in
pyproject.toml pass on the project, and each fails when a back-arrow is added to a copy of it,
an import hidden inside a function included."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
CONTRACTS = {contract["id"]: contract["name"] for contract in CONFIG["contracts"]}
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def broken(result: subprocess.CompletedProcess) -> set[str]:
    return {id_ for id_, name in CONTRACTS.items() if f"{name} BROKEN" in result.stdout}


@pytest.fixture(scope="module")
def project_copy(tmp_path_factory) -> Path:
    """The root packages and pyproject.toml, copied once (each test copies this copy)."""
    copy = tmp_path_factory.mktemp("house") / "project"
    copy.mkdir()
    for package in CONFIG["root_packages"]:
        shutil.copytree(
            ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


@pytest.fixture
def project(project_copy, tmp_path) -> Path:
    copy = tmp_path / "project"
    shutil.copytree(project_copy, copy)
    return copy


def test_the_project_keeps_every_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert broken(result) == set()
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in result.stdout


def add_import(path: Path, line: str) -> None:
    """Append ``line`` to a module, inside a function when it is indented."""
    text = path.read_text()
    if line.startswith(" "):
        line = f"def _back_arrow():\n{line}\n"
    path.write_text(f"{text}\n\n{line}\n")


BACK_ARROWS = [
    pytest.param(
        "audit/services.py",
        "    from alerts.services import alerts_raise  # noqa",
        "floors",
        id="audit-calls-alerts-inside-a-function",
    ),
    pytest.param(
        "brokerops/health.py",
        "from reconciliation.models import ReconciliationRun",
        "floors",
        id="ground-floor-reads-reconciliation",
    ),
    pytest.param(
        "orders/services/sync.py",
        "    import reconciliation.services",
        "floors",
        id="orders-imports-reconciliation",
    ),
    pytest.param(
        "brokerops/locks.py",
        "    from brokerops.alpaca import BrokerError",
        "doors",
        id="ground-floor-imports-a-door",
    ),
    pytest.param(
        "brokerops/intent/local.py",
        "from brokerops.alpaca.constants import PAPER_BROKER_URL",
        "doors",
        id="a-door-imports-the-other",
    ),
    pytest.param(
        "brokerops/sim/book.py",
        "    from brokerops.symbols import symbol_key",
        "sim-imports-nothing",
        id="sim-imports-the-project",
    ),
    pytest.param(
        "reconciliation/facts.py",
        "from brokerops.sim import PaperBroker",
        "sim-imported-by-demo-only",
        id="an-app-imports-sim",
    ),
]


@pytest.mark.parametrize(("module", "line", "contract"), BACK_ARROWS)
def test_a_back_arrow_breaks_its_contract(project, module, line, contract):
    add_import(project / module, line)
    result = lint_imports(project)
    assert result.returncode != 0
    assert contract in broken(result), result.stdout
    assert module.removesuffix(".py").replace("/", ".") in result.stdout


def test_a_new_ground_floor_module_must_be_given_its_floor(project):
    (project / "brokerops" / "newcomer.py").write_text('"""Not placed on a floor yet."""\n')
    result = lint_imports(project)
    assert result.returncode != 0
    assert "brokerops.newcomer" in result.stdout + result.stderr
