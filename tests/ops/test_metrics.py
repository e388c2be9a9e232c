"""``/metrics`` (docs/design.md section 13): values after real work, from the web process and from a
real Celery worker process (multiprocess mode), the database gauges, access, and the
dashboard and alert rules in ``ops/`` naming only metrics that exist."""

import json
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from celery import Celery
from django.db import connection
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from audit.models import AuditVerification
from audit.services import audit_verify
from brokerops import metrics
from brokerops.alpaca import InProcessLimiter, RetryPolicy
from brokerops.alpaca.errors import BrokerRateLimited, BrokerUnavailable
from brokerops.intent.local import LocalSignalStore
from brokerops.sim import PaperBroker
from orders.services import orders_submit_pending
from orders.services.outcomes import Outcome
from reconciliation.models import Mismatch, ReconciliationRun
from reconciliation.services import reconciliation_run
from tests import factories
from tests.commands import database_url_of_this_test
from tests.environment import child_env
from tests.integration.conftest import gateway_for

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "metrics-test-token"
CONTRACT = (  # docs/design.md section 13, as the exposition names them
    "brokerops_reconciliation_runs_total",
    "brokerops_mismatches_total",
    "brokerops_signals_closed_total",
    "brokerops_alpaca_requests_total",
    "brokerops_alpaca_rate_limited_total",
    "brokerops_rate_limiter_wait_seconds",
    "brokerops_orders_submitted_total",
    "brokerops_last_successful_reconciliation_timestamp_seconds",
    "brokerops_audit_chain_ok",
)


# --- helpers -------------------------------------------------------------------------------


def scrape(client, token: str | None = TOKEN) -> dict[tuple[str, frozenset], float]:
    """GET /metrics and parse it: ``(sample name, labels) -> value``."""
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return parse(response.content.decode())


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def by_label(samples, name: str, label: str) -> Counter:
    """Values of ``name`` summed by one label."""
    out: Counter = Counter()
    for (sample, labels), value in samples.items():
        if sample == name:
            out[dict(labels)[label]] += value
    return out


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(after: Counter, before: Counter) -> dict:
    return {k: after[k] - before[k] for k in after if after[k] - before[k]}


def broker_requests(broker: PaperBroker) -> dict[str, int]:
    """The paper broker's own count of what it received, keyed as our endpoint label."""
    return {f"{m} {t}": n for (m, t), n in broker.counters().items() if n}


def active(symbol, qty):
    return {"symbol": symbol, "side": "buy", "qty": str(qty), "order_type": "market",
            "status": "ACTIVE"}  # fmt: skip


def pending(symbol, qty):
    return {"symbol": symbol, "side": "buy", "qty": str(qty), "order_type": "market",
            "status": "PENDING"}  # fmt: skip


@pytest.fixture
def single_process(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.PROMETHEUS_MULTIPROC_DIR = None


# --- the web process ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_after_a_run_and_an_order_cycle_the_web_process_serves_their_counts(client, single_process):
    """Counters are per process and cumulative over the test session: deltas are checked."""
    store = LocalSignalStore()
    before = scrape(client)
    with PaperBroker(default_assets=True) as broker:
        broker.seed_position("MSFT", 5)  # UNTRACKED_POSITION
        broker.seed_position("TSLA", 7)  # QTY_MISMATCH (10 expected)
        store.put_documents(
            [("s-gone", active("AAPL", 3)),  # ORPHAN_POSITION: closed
             ("s-tsla", active("TSLA", 10))]
        )  # fmt: skip
        limiter = InProcessLimiter(60_000, burst=1000)  # never waits long; every wait observed
        gateway = gateway_for(broker, limiter=limiter)
        try:
            run = reconciliation_run(trigger="command", gateway=gateway, store=store)
            store.put_documents([("p-ok", pending("AAPL", 1)), ("p-halted", pending("HALTD", 1))])
            result = orders_submit_pending(gateway=gateway, store=store)
        finally:
            gateway.close()
        sent = broker_requests(broker)
    after = scrape(client)

    assert run.status == "succeeded", run.error
    runs = delta(
        by_label(after, "brokerops_reconciliation_runs_total", "status"),
        by_label(before, "brokerops_reconciliation_runs_total", "status"),
    )
    assert runs == {"succeeded": 1}
    kinds = Counter(run.mismatches.values_list("kind", flat=True))
    assert kinds["ORPHAN_POSITION"] == kinds["UNTRACKED_POSITION"] == kinds["QTY_MISMATCH"] == 1
    assert delta(
        by_label(after, "brokerops_mismatches_total", "kind"),
        by_label(before, "brokerops_mismatches_total", "kind"),
    ) == dict(kinds)
    closed = value(after, "brokerops_signals_closed_total") - value(
        before, "brokerops_signals_closed_total"
    )
    assert closed == 1
    # Orders: one accepted, one refused by validation (HALTD is not tradable).
    assert Counter(o.outcome for o in result.outcomes) == {
        Outcome.SUBMITTED: 1,
        Outcome.REJECTED: 1,
    }
    assert delta(
        by_label(after, "brokerops_orders_submitted_total", "outcome"),
        by_label(before, "brokerops_orders_submitted_total", "outcome"),
    ) == {"submitted": 1, "rejected": 1}
    # Every request the broker received, counted under its endpoint template, none lost.
    requests = delta(
        by_label(after, "brokerops_alpaca_requests_total", "endpoint"),
        by_label(before, "brokerops_alpaca_requests_total", "endpoint"),
    )
    assert requests == sent
    assert {"GET /v2/positions", "GET /v2/orders", "POST /v2/orders"} <= set(requests)
    assert not any(re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-", e) for e in requests)  # no raw ids
    waits = value(after, "brokerops_rate_limiter_wait_seconds_count") - value(
        before, "brokerops_rate_limiter_wait_seconds_count"
    )
    assert waits == sum(sent.values())


@pytest.mark.django_db(transaction=True)
def test_a_429_and_no_answer_are_counted_by_status(client, single_process):
    before = scrape(client)
    with PaperBroker(default_assets=True) as broker:
        broker.inject_next("GET /v2/account", "429")
        gateway = gateway_for(broker, retry_policy=RetryPolicy(max_attempts=1))
        try:
            with pytest.raises(BrokerRateLimited):
                gateway.get_account()
            gateway.get_account()
        finally:
            gateway.close()
        port = int(broker.base_url.rsplit(":", 1)[1])
    # The broker is gone: nothing listens on its port any more.
    gone = gateway_for(
        PaperBrokerAddress(f"http://127.0.0.1:{port}"), retry_policy=RetryPolicy(max_attempts=1)
    )
    try:
        with pytest.raises(BrokerUnavailable):
            gone.get_account()
    finally:
        gone.close()
    after = scrape(client)

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "brokerops_alpaca_requests_total"
    assert grew(requests, endpoint="GET /v2/account", status="429") == 1
    assert grew(requests, endpoint="GET /v2/account", status="200") == 1
    assert grew(requests, endpoint="GET /v2/account", status="error") == 1
    assert grew("brokerops_alpaca_rate_limited_total") == 1


class PaperBrokerAddress:
    """What :func:`gateway_for` reads of a broker: its address."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url


def test_endpoint_labels_are_templates_never_ids():
    oid = str(uuid.uuid4())
    assert metrics.alpaca_endpoint("get", f"http://h/v2/orders/{oid}") == "GET /v2/orders/{id}"
    assert metrics.alpaca_endpoint("DELETE", f"http://h/v2/orders/{oid}") == (
        "DELETE /v2/orders/{id}"
    )
    assert metrics.alpaca_endpoint("GET", "http://h/proxy/v2/positions/BTCUSD") == (
        "GET /v2/positions/{symbol_or_asset_id}"
    )
    assert metrics.alpaca_endpoint("GET", "https://d/v1beta3/crypto/us/latest/trades?x=1") == (
        "GET /v1beta3/crypto/{loc}/latest/trades"
    )
    assert metrics.alpaca_endpoint("GET", f"http://h/v2/whatever/{oid}") == "GET other"
    assert metrics.alpaca_endpoint("BREW", "http://h/v2/orders") == "OTHER /v2/orders"


# --- access ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_token_is_required_when_set(client, single_process):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert b"brokerops_reconciliation_runs_total" in response.content
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


@pytest.mark.django_db
def test_without_a_token_only_loopback_is_served(client, settings):
    settings.METRICS_TOKEN = None
    settings.PROMETHEUS_MULTIPROC_DIR = None
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403
    assert (
        client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code
        == 403
    )


# --- the database gauges ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_gauges_follow_the_database(client, single_process):
    last = "brokerops_last_successful_reconciliation_timestamp_seconds"
    chain = "brokerops_audit_chain_ok"
    samples = scrape(client)
    assert (last, frozenset()) not in samples and (chain, frozenset()) not in samples

    older = timezone.now() - timedelta(hours=2)
    newest = timezone.now() - timedelta(minutes=3)
    factories.reconciliation_run(started_at=older, finished_at=older)
    factories.reconciliation_run(started_at=newest, finished_at=newest)
    # Later runs that did not succeed, or were dry, do not move it.
    factories.reconciliation_run(status="failed", finished_at=timezone.now())
    factories.reconciliation_run(dry_run=True, finished_at=timezone.now())
    assert value(scrape(client), last) == pytest.approx(newest.timestamp())

    assert audit_verify(trigger="command", processes=1).ok
    assert value(scrape(client), chain) == 1.0
    now = timezone.now()
    AuditVerification.objects.create(
        started_at=now, finished_at=now, ok=False, problems=1, trigger="schedule"
    )
    assert value(scrape(client), chain) == 0.0  # the latest verification counts
    assert audit_verify(trigger="command", processes=1).ok
    assert value(scrape(client), chain) == 1.0


# --- a real Celery worker process, multiprocess mode -------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_celery_worker_processs_counts_reach_metrics_through_the_shared_directory(
    client, settings, tmp_path, redis_url
):
    if connection.vendor == "sqlite" and "memory" in str(connection.settings_dict["NAME"]):
        pytest.skip("the worker process cannot open an in-memory SQLite test database")
    directory = tmp_path / "prometheus"
    directory.mkdir()
    queue = f"metrics-test-{uuid.uuid4().hex[:8]}"
    store = LocalSignalStore()
    with PaperBroker(default_assets=True) as broker:
        broker.seed_position("MSFT", 5)  # UNTRACKED_POSITION
        store.put_documents([("s-gone", active("AAPL", 3))])  # ORPHAN_POSITION
        env = child_env(
            DATABASE_URL=database_url_of_this_test(),
            REDIS_URL=redis_url,
            ALPACA_BASE_URL=broker.base_url,  # no keys: the paper broker's, market data there too
            ALPACA_RATE_LIMIT_PER_MIN="60000",
            SIGNAL_STORE="local",
            PROMETHEUS_MULTIPROC_DIR=str(directory),
        )
        log = tmp_path / "worker.log"
        with log.open("w") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "brokerops", "worker", "-Q", queue,
                 "--pool", "prefork", "--concurrency", "1", "--loglevel", "INFO",
                 "--without-heartbeat", "--without-gossip", "--without-mingle",
                 "-n", f"{queue}@%h"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        # Not the current app: shared tasks would otherwise bind to this one (not eager) for the
        # rest of the session, and later tests' .delay() would go to Redis unrun.
        caller = Celery("metrics-test", broker=redis_url, backend=redis_url, set_as_current=False)
        try:
            run_id = caller.send_task(
                "reconciliation.run", kwargs={"trigger": "schedule"}, queue=queue
            ).get(timeout=120)
            store.put_documents([("p-ok", pending("AAPL", 1))])
            counts = caller.send_task("orders.submit_pending", queue=queue).get(timeout=60)
            sent = broker_requests(broker)
            settings.METRICS_TOKEN = TOKEN
            settings.PROMETHEUS_MULTIPROC_DIR = str(directory)
            while_running = scrape(client)
        except Exception:
            worker.kill()
            worker.wait()
            print(log.read_text())  # shown with the failure
            raise
        finally:
            caller.close()
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
    output = log.read_text()
    assert worker.returncode == 0, output
    run = ReconciliationRun.objects.get(pk=run_id)
    assert run.status == "succeeded", run.error
    assert counts["submitted"] == 1, counts

    # The worker's child process wrote these; this process (single-process mode) counted none
    # of them: /metrics read them from the directory.
    assert by_label(while_running, "brokerops_reconciliation_runs_total", "status") == {
        "succeeded": 1,
        "failed": 0,
        "skipped": 0,
    }
    kinds = Counter(Mismatch.objects.filter(run=run).values_list("kind", flat=True))
    assert kinds == {"ORPHAN_POSITION": 1, "UNTRACKED_POSITION": 1}
    assert {
        k: v for k, v in by_label(while_running, "brokerops_mismatches_total", "kind").items() if v
    } == dict(kinds)
    assert value(while_running, "brokerops_signals_closed_total") == 1
    assert {
        k: v
        for k, v in by_label(while_running, "brokerops_orders_submitted_total", "outcome").items()
        if v
    } == {"submitted": 1}
    assert dict(by_label(while_running, "brokerops_alpaca_requests_total", "endpoint")) == sent
    # The shared (Redis) limiter observed one wait per request.
    assert value(while_running, "brokerops_rate_limiter_wait_seconds_count") == sum(sent.values())
    assert value(
        while_running, "brokerops_last_successful_reconciliation_timestamp_seconds"
    ) == pytest.approx(run.finished_at.timestamp())

    # Files are named by host and pid; counts outlive the processes that made them.
    names = sorted(p.name for p in directory.iterdir())
    assert any(re.fullmatch(r"counter_[A-Za-z0-9.-]+-\d+\.db", n) for n in names), names
    after_stop = scrape(client)
    assert value(after_stop, "brokerops_reconciliation_runs_total", status="succeeded") == 1
    assert by_label(after_stop, "brokerops_alpaca_requests_total", "endpoint") == by_label(
        while_running, "brokerops_alpaca_requests_total", "endpoint"
    )


# --- the metric lists, the dashboard and the alert rules ------------------------------------------


def test_label_lists_agree_with_the_models():
    assert set(metrics.RUN_STATUSES) == set(ReconciliationRun.Status.values) - {
        "queued",
        "running",
    }
    assert set(metrics.MISMATCH_KINDS) == set(Mismatch.Kind.values)
    assert set(metrics.ORDER_OUTCOMES) == {str(o) for o in Outcome}
    assert metrics.SIGNAL_CLOSED_ACTION == Mismatch.Action.SIGNAL_CLOSED_MANUAL


@pytest.fixture
def exposed(settings) -> set[str]:
    """Every name /metrics can serve: sample names, and the names its ``# TYPE`` lines declare
    (a labelled counter before its first event and the database gauges on an empty database
    have no sample yet)."""
    settings.PROMETHEUS_MULTIPROC_DIR = None
    text = metrics.metrics_render().decode()
    names = {sample for sample, _ in parse(text)}
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE):
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return names


def referenced(text: str) -> set[str]:
    return set(re.findall(r"\bbrokerops_[a-z_]+\b", text))


def contract_base(name: str) -> str:
    return re.sub(r"_(bucket|count|sum)$", "", name)


@pytest.mark.django_db
def test_every_contract_metric_is_served(exposed):
    for name in CONTRACT:
        assert name in exposed or f"{name}_count" in exposed, name


@pytest.mark.django_db
def test_the_dashboard_uses_only_served_contract_metrics(exposed):
    dashboard = json.loads((ROOT / "ops/grafana/brokerops.json").read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["panels"]
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert exprs and all(_balanced(e) for e in exprs)
    names = set().union(*(referenced(e) for e in exprs))
    assert names <= exposed, names - exposed
    assert {contract_base(n) for n in names} <= set(CONTRACT)
    assert {contract_base(n) for n in names} == set(CONTRACT)  # every contract metric shown


@pytest.mark.django_db
def test_the_alert_rules_parse_and_use_only_served_metrics(exposed):
    spec = yaml.safe_load((ROOT / "ops/prometheus/alerts.yml").read_text())
    rules = [rule for group in spec["groups"] for rule in group["rules"]]
    assert all(set(group) <= {"name", "rules", "interval"} for group in spec["groups"])
    alerts = {}
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"])
        assert isinstance(rule["expr"], str) and _balanced(rule["expr"])
        if "for" in rule:
            assert re.fullmatch(r"\d+[smhdw]", rule["for"])
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"]
        alerts[rule["alert"]] = rule["expr"]
    names = set().union(*(referenced(e) for e in alerts.values()))
    assert names <= exposed, names - exposed
    joined = "\n".join(alerts.values())
    # What the brief asks to be alerted on.
    assert 'brokerops_reconciliation_runs_total{status="failed"}' in joined
    assert "time() - brokerops_last_successful_reconciliation_timestamp_seconds" in joined
    assert "brokerops_audit_chain_ok == 0" in joined
    assert "brokerops_alpaca_rate_limited_total" in joined
    assert 'brokerops_mismatches_total{kind="ORPHAN_POSITION"}' in joined


def test_the_example_scrape_config_loads_the_rules_and_sends_the_token():
    spec = yaml.safe_load((ROOT / "ops/prometheus/prometheus.yml").read_text())
    for rule_file in spec["rule_files"]:
        assert (ROOT / "ops/prometheus" / rule_file).is_file()
    (job,) = spec["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer"
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    host = job["static_configs"][0]["targets"][0].split(":")[0]
    assert host in compose["services"]
    assert host in compose["services"]["web"]["environment"]["DJANGO_ALLOWED_HOSTS"]


def _balanced(expr: str) -> bool:
    """Brackets balanced outside quoted strings (promtool is not available here)."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack = []
    for char in re.sub(r'"[^"]*"', '""', expr):
        if char in "([{":
            stack.append(char)
        elif char in pairs and (not stack or stack.pop() != pairs[char]):
            return False
    return not stack


def test_the_compose_services_share_one_metrics_directory():
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name in ("web", "worker", "stream", "watcher"):
        service = spec["services"][name]
        directory = service["environment"]["PROMETHEUS_MULTIPROC_DIR"]
        assert f"metrics:{directory}" in service["volumes"], name
        assert "METRICS_TOKEN" in service["environment"]
    assert spec["volumes"]["metrics"]["driver_opts"]["type"] == "tmpfs"
    assert "gunicorn.conf.py" in spec["services"]["web"]["command"]


def test_gunicorns_child_exit_drops_the_dead_workers_live_files(tmp_path, monkeypatch):
    """Live gauges of a dead process leave; its counters stay (they are part of the sums)."""
    import runpy

    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    pid = 4242
    ident = metrics.process_identifier(pid)
    live = tmp_path / f"gauge_livesum_{ident}.db"
    kept = tmp_path / f"counter_{ident}.db"
    live.write_bytes(b"")
    kept.write_bytes(b"")
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))

    class Worker:
        pass

    worker = Worker()
    worker.pid = pid
    config["child_exit"](None, worker)
    assert not live.exists() and kept.exists()


def test_the_limiter_records_every_wait_zero_included():
    """The limiter records a wait per token taken, 0 included."""
    before = metrics.RATE_LIMITER_WAIT.collect()[0]
    count_before = next(s.value for s in before.samples if s.name.endswith("_count"))
    limiter = InProcessLimiter(60, burst=1, max_wait_s=5)
    started = time.monotonic()
    limiter.acquire()
    limiter.acquire()  # waits ~1 s for the refill
    assert time.monotonic() - started >= 0.9
    after = metrics.RATE_LIMITER_WAIT.collect()[0]
    samples = {(s.name, s.labels.get("le")): s.value for s in after.samples}
    assert samples[("brokerops_rate_limiter_wait_seconds_count", None)] - count_before == 2
    assert samples[("brokerops_rate_limiter_wait_seconds_sum", None)] >= 0.9
