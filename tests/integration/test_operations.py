"""Health, readiness, metrics, request-id logs, and the launcher refusing a broken start."""
from __future__ import annotations

import json
import logging
import socket

import pytest

from services.audit.app import create_app as create_audit
from shared.broker import free_port
from shared.config import AuditSettings
from shared.launcher import LaunchConfig, LaunchError, SystemLauncher
from shared.logs import JsonFormatter
from tests.helpers import running_app


def audit_settings(tmp_path, bootstrap: str) -> AuditSettings:
    return AuditSettings(var_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/audit.db",
                         kafka_bootstrap=bootstrap, run_consumer=False, log_json=False)


async def test_readyz_reports_the_broker_and_database(tmp_path, broker):
    async with running_app(create_audit(audit_settings(tmp_path, "127.0.0.1:1"))) as client:
        down = await client.get("/readyz")
        assert down.status_code == 503
        assert down.json()["checks"] == {"database": "ok", "broker": "unreachable"}
        assert (await client.get("/healthz")).json() == {"status": "ok", "service": "audit"}
    async with running_app(create_audit(audit_settings(tmp_path, broker.bootstrap))) as client:
        up = await client.get("/readyz")
        assert up.status_code == 200 and up.json()["checks"] == {"database": "ok", "broker": "ok"}


async def test_metrics_count_requests_and_responses_carry_a_request_id(tmp_path):
    async with running_app(create_audit(audit_settings(tmp_path, "127.0.0.1:1"))) as client:
        response = await client.get("/healthz", headers={"X-Request-ID": "req-42"})
        assert response.headers["x-request-id"] == "req-42"
        metrics = (await client.get("/metrics")).text
    assert 'http_requests_total{handler="/healthz",method="GET",status="2xx"}' in metrics
    assert 'http_request_duration_seconds_bucket{handler="/healthz"' in metrics


def test_json_log_lines_carry_service_and_request_id():
    from shared.logs import request_id_var
    token = request_id_var.set("req-7")
    try:
        record = logging.LogRecord("http", logging.INFO, __file__, 1, "GET %s", ("/x",), None)
        line = json.loads(JsonFormatter("registry").format(record))
    finally:
        request_id_var.reset(token)
    assert line["service"] == "registry" and line["request_id"] == "req-7" and line["msg"] == "GET /x"


async def test_launcher_fails_when_a_service_cannot_start(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy_port = taken.getsockname()[1]
    config = LaunchConfig(var_dir=tmp_path, ports={"registry": busy_port, "benefits": free_port(),
                                                   "audit": free_port()},
                          broker_port=free_port(), start_timeout_s=30)
    launcher = SystemLauncher(config)
    try:
        with pytest.raises(LaunchError, match="registry exited"):
            await launcher.start()
    finally:
        taken.close()
    assert all(process.returncode is not None for process in launcher.children.values())
