"""Start-up time of the operator commands (issue 14): wall time of ``python manage.py ...`` in a
fresh process, median of N runs, in two set-ups:

- ``source``: as the environment says; with ``PYTHONDONTWRITEBYTECODE=1`` and no compiled
  bytecode in the virtualenv (this machine, and the Docker image as built today) every start
  compiles every module it imports;
- ``bytecode``: with a warm bytecode cache (``PYTHONPYCACHEPREFIX`` in a scratch directory, the
  tree untouched), as on an install that compiled its bytecode (``UV_COMPILE_BYTECODE=1``).

``--tree DIR`` times another checkout with the same interpreter (for a before/after figure:
``git archive HEAD | tar -x -C /tmp/before``). Prints figures, asserts nothing.

    ./dev python tests/benchmarks/startup_bench.py [--runs 5] [--tree /tmp/before]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = (["--help"], ["check"], ["reconcile", "--help"], ["verify_audit", "--help"])


def time_command(tree: Path, args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=tree, env=env, capture_output=True, timeout=120
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed in {tree}:\n{done.stderr.decode()[-2000:]}")
    return elapsed


def bench(tree: Path, runs: int) -> None:
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPYCACHEPREFIX"}
    with tempfile.TemporaryDirectory(prefix="startup-bench-pyc-") as cache:
        cached = {k: v for k, v in base.items() if k != "PYTHONDONTWRITEBYTECODE"}
        cached["PYTHONPYCACHEPREFIX"] = cache
        modes = {"source": base, "bytecode": cached}
        print(f"{tree}  (python {sys.version.split()[0]}, median of {runs} runs, seconds)")
        print(f"  {'command':<22}" + "".join(f"{mode:>12}" for mode in modes))
        for args in COMMANDS:
            cells = []
            for env in modes.values():
                time_command(tree, args, env)  # warm the OS file cache (and the bytecode cache)
                cells.append(statistics.median(time_command(tree, args, env) for _ in range(runs)))
            print(f"  {' '.join(args):<22}" + "".join(f"{c:>12.2f}" for c in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tree", type=Path, action="append", help="another checkout to time")
    options = parser.parse_args()
    for tree in [*(options.tree or []), ROOT]:
        bench(tree.resolve(), options.runs)


if __name__ == "__main__":
    main()
