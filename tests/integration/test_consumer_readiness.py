"""`/readyz` of a consuming service (benefits, audit) reports its consumer: running and behind answer 200,
starting and restarting answer 200 within the grace period and 503 after it; a stopped broker shows as
restarting."""
from __future__ import annotations

import time

import pytest

from services.audit.app import create_app as create_audit
from services.benefits.app import create_app as create_benefits
from shared.bus import Consumer
from shared.config import TOPIC_REGISTRY, AuditSettings, BenefitsSettings
from tests.helpers import eventually, running_app

GRACE_S = 30.0  # the default grace period


@pytest.fixture
def broker_up(monkeypatch):
    async def reachable(_bootstrap: str, timeout: float = 1.0) -> bool:
        return True
    monkeypatch.setattr("shared.app.broker_reachable", reachable)


def audit_app(tmp_path, bootstrap: str = "127.0.0.1:1"):
    return create_audit(AuditSettings(var_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/audit.db",
                                      kafka_bootstrap=bootstrap, run_consumer=False, log_json=False))


async def handler(_record) -> None:
    return None


def consumer_in(settings, state: str, *, lag: int | None = None, started_ago_s: float = 1.0) -> Consumer:
    """A real Consumer object (never started) in a given state; its lag as the client would report it."""
    consumer = Consumer(settings, [TOPIC_REGISTRY], "readiness-test", handler, name="test-consumer")
    consumer.state = state
    consumer.started_at = consumer.state_since = time.time() - started_ago_s
    consumer.processed, consumer.dead_lettered = 7, 1

    async def client_lag() -> int | None:
        return lag
    consumer.lag = client_lag
    return consumer


async def ready(client):
    response = await client.get("/readyz")
    return response.status_code, response.json(), response.headers["content-type"]


async def test_running_consumer_is_ready_and_reported(tmp_path, broker_up):
    app = audit_app(tmp_path)
    async with running_app(app) as client:
        app.state.consumer = consumer_in(app.state.settings, "running", lag=3)
        code, body, _ = await ready(client)
    assert code == 200 and body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "broker": "ok"}
    consumer = body["consumer"]
    assert consumer["state"] == "running" and consumer["lag"] == 3
    assert consumer["processed"] == 7 and consumer["dead_lettered"] == 1 and consumer["last_error"] is None


async def test_behind_consumer_is_still_ready_and_says_behind_with_its_lag(tmp_path, broker_up):
    app = audit_app(tmp_path)
    async with running_app(app) as client:
        app.state.consumer = consumer_in(app.state.settings, "running", lag=5000)  # over the threshold (1000)
        code, body, _ = await ready(client)
    assert code == 200, body
    assert body["status"] == "behind" and body["consumer"]["state"] == "behind" and body["consumer"]["lag"] == 5000


async def test_starting_is_ready_within_the_grace_period_then_503(tmp_path, broker_up):
    app = audit_app(tmp_path)
    async with running_app(app) as client:
        app.state.consumer = consumer_in(app.state.settings, "starting", started_ago_s=5)
        code, body, _ = await ready(client)
        assert code == 200 and body["status"] == "starting", body
        assert 4 <= body["consumer"]["state_for_s"] < GRACE_S

        app.state.consumer = consumer_in(app.state.settings, "starting", started_ago_s=GRACE_S + 15)
        code, body, media = await ready(client)
    assert code == 503 and media == "application/problem+json"
    assert body["checks"]["consumer"].startswith("starting for 4") and body["checks"]["broker"] == "ok"
    assert "grace period" in body["detail"] and body["consumer"]["state"] == "starting"


async def test_restarting_is_ready_within_the_grace_period_then_503(tmp_path, broker_up):
    app = audit_app(tmp_path)
    async with running_app(app) as client:
        consumer = consumer_in(app.state.settings, "running")
        app.state.consumer = consumer
        assert (await ready(client))[0] == 200
        consumer.state, consumer.last_error = "restarting", "KafkaConnectionError: broker away"
        code, body, _ = await ready(client)
        assert code == 200 and body["status"] == "restarting" and body["consumer"]["state_for_s"] < 2
        assert body["consumer"]["last_error"] == "KafkaConnectionError: broker away"
        # the state was first seen longer ago than the grace period (probes come every few seconds)
        consumer.state_since = time.time() - GRACE_S - 5
        code, body, _ = await ready(client)
        assert code == 503 and body["checks"]["consumer"].startswith("restarting for 3"), body
        consumer.state = "running"  # back: ready again at once
        code, body, _ = await ready(client)
    assert code == 200 and body["status"] == "ok" and "consumer" not in body["checks"]


async def test_a_consumer_that_reports_when_its_state_began_is_judged_by_that(tmp_path, broker_up):
    app = audit_app(tmp_path)
    async with running_app(app) as client:
        consumer = consumer_in(app.state.settings, "restarting")
        plain_status = consumer.status

        async def status_with_since() -> dict:
            return {**await plain_status(), "state_since": time.time() - GRACE_S - 10}
        consumer.status = status_with_since
        app.state.consumer = consumer
        code, body, _ = await ready(client)
    assert code == 503 and body["consumer"]["state_for_s"] >= GRACE_S + 10


async def test_registry_has_no_consumer_part(tmp_path, broker_up):
    from services.registry.app import create_app as create_registry
    from shared.config import RegistrySettings
    app = create_registry(RegistrySettings(var_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/r.db",
                                           kafka_bootstrap="127.0.0.1:1", log_json=False))
    async with running_app(app) as client:
        code, body, _ = await ready(client)
    assert code == 200 and body["status"] == "ok" and "consumer" not in body


async def test_real_consumer_goes_running_then_restarting_when_the_broker_stops(tmp_path, broker):
    settings = BenefitsSettings(var_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/benefits.db",
                                kafka_bootstrap=broker.bootstrap, log_json=False, run_consumer=True)
    app = create_benefits(settings)
    async with running_app(app) as client:
        async def consumer_state(wanted: str):
            response = await client.get("/readyz")
            body = response.json()
            return (response.status_code, body) if body.get("consumer", {}).get("state") == wanted else None

        code, body = await eventually(lambda: consumer_state("running"), timeout=30)
        assert code == 200 and body["status"] == "ok" and body["consumer"]["lag"] is not None
        broker.stop()
        code, body = await eventually(lambda: consumer_state("restarting"), timeout=40, interval=0.5)
    assert code == 503 and body["checks"]["broker"] == "unreachable"
