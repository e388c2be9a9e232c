"""Start-up: loading the apps, listing and loading the commands, the tasks and the URLs, or
running ``check``, never imports the heavy broker and store clients (issue 14: every command took
3.3 s because alpaca-py imports pandas). They load where first used; the figures are printed by
``tests/benchmarks/startup_bench.py``."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.environment import child_env

ROOT = Path(__file__).resolve().parents[2]
# Top-level packages that must not be loaded at start-up (and why they are heavy).
HEAVY = (
    "alpaca",  # alpaca-py: pydantic models, pandas
    "pandas",
    "numpy",
    "pydantic",
    "websockets",  # the trade_updates stream
    "google.cloud.firestore",  # the signal store on Firestore, grpc
    "grpc",
    "redis",  # the limiter and locks connect when first used
    "requests",  # the gateway's HTTP session
)
LOADED = """
import json, sys
loaded = {h for h in HEAVY for m in sys.modules if m == h or m.startswith(h + ".")}
print(json.dumps(sorted(loaded)))
"""
SETUP = """
import importlib, django
django.setup()  # loads every app, its models and (admin's ready) every admin module
from django.core.management import get_commands, load_command_class
for name, app in get_commands().items():  # what `manage.py --help` lists, and each command's
    if not app.startswith("django."):     # module, as `manage.py <command> --help` loads it
        load_command_class(app, name)
from brokerops.celery import app
app.loader.import_default_modules()  # every tasks module, as a worker loads them
importlib.import_module("brokerops.urls")  # the web process's URLconf (admin views included)
"""
CHECK = """
import django
django.setup()
from django.core.management import call_command
call_command("check", verbosity=0)  # the system checks load every template tag library too
"""


def _loaded_after(code: str, tmp_path: Path) -> list[str]:
    # The services CI configures stay (a Redis broker must not load redis at start either).
    services = {k: os.environ[k] for k in ("DATABASE_URL", "REDIS_URL") if os.environ.get(k)}
    env = child_env(DJANGO_SETTINGS_MODULE="brokerops.settings", **services)
    script = f"HEAVY = {HEAVY!r}\n{code}\n{LOADED}"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_loading_apps_commands_tasks_and_urls_imports_no_heavy_client(tmp_path):
    assert _loaded_after(SETUP, tmp_path) == []


def test_manage_py_check_imports_no_heavy_client(tmp_path):
    assert _loaded_after(CHECK, tmp_path) == []


@pytest.mark.parametrize("name", ["AlpacaGateway", "gateway_from_settings", "RedisLimiter"])
def test_the_gateway_and_limiter_load_when_first_used(name, tmp_path):
    code = f"import brokerops.alpaca as a\nassert callable(a.{name})"
    loaded = _loaded_after(code, tmp_path)
    assert "redis" in loaded
    if name != "RedisLimiter":
        assert {"alpaca", "pandas", "requests"} <= set(loaded)


def test_an_unknown_name_of_the_broker_package_is_an_attribute_error():
    import brokerops.alpaca

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        brokerops.alpaca.Nope  # noqa: B018
