"""The project's environment variables, for the processes tests start (commands, consumers).

``PROJECT_VARS`` is read from ``brokerops/settings.py`` itself (every ``env.<type>("NAME", ...)``),
so a new setting is in the list the day it is added, and a child process never inherits one from
the developer's shell or CI by accident.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# env.str("NAME", ...), env.bool(...), env.db(...), and the bounded readers _env_number("NAME", ...)
# and _env_decimal(...): the call may break its line before the name.
_SETTING = re.compile(r"\b(?:env(?:\.\w+)?|_env_\w+)\(\s*\"([A-Z][A-Z0-9_]*)\"")


def settings_variables() -> set[str]:
    """Every environment variable brokerops/settings.py reads."""
    return set(_SETTING.findall((ROOT / "brokerops" / "settings.py").read_text()))


#: Read by the project outside settings.py (Django's and Prometheus's own). DJANGO_SETTINGS_MODULE
#: is left to the child: it is always brokerops.settings.
_OUTSIDE_SETTINGS = ("DJANGO_ALLOW_ASYNC_UNSAFE", "PROMETHEUS_MULTIPROC_DIR")

PROJECT_VARS: tuple[str, ...] = tuple(sorted(settings_variables() | set(_OUTSIDE_SETTINGS)))


def child_env(**overrides: str) -> dict[str, str]:
    """This process's environment without any project variable, plus ``overrides`` (and the
    repository on ``PYTHONPATH``): what a command started by a test sees."""
    env = {k: v for k, v in os.environ.items() if k not in PROJECT_VARS}
    env["PYTHONPATH"] = str(ROOT)
    env.update(overrides)
    return env
