"""Schemathesis against the DCI paths with a registered sender behind the token, so generated messages get
past the sender check into the message checks; then the worker answers every message that was taken.
Never a 5xx, every answer within the registry's document, and no accepted message the worker cannot answer.
(The whole-service fuzz in tests/integration/test_openapi_fuzz.py covers the DCI paths too, without a sender.)"""
from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from pathlib import Path

import httpx
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from sqlalchemy import func, select

from services.registry.app import create_app
from services.registry.dci.worker import DciWorker
from services.registry.tables import dci_deliveries, dci_transactions
from shared.auth import mint_token
from shared.config import RegistrySettings
from tests.helpers import household_body, running_app
from tests.integration.registry.dci.support import now_ts

# 100 here: the whole-service fuzz (test_openapi_fuzz.py) runs 200 per operation on the DCI paths as well.
EXAMPLES = int(os.environ.get("JZ_FUZZ_EXAMPLES", "100"))
_VAR = Path(tempfile.mkdtemp(prefix="jz-dci-fuzz-"))
_SETTINGS = RegistrySettings(var_dir=_VAR, database_url=f"sqlite+aiosqlite:///{_VAR}/registry.db",
                             kafka_bootstrap="127.0.0.1:1", log_json=False, log_level="WARNING", run_consumer=False,
                             dci_worker=False)
_APP = create_app(_SETTINGS, dci_transport=httpx.MockTransport(lambda request: httpx.Response(200, json={})))
_HEADERS = {"Authorization": f"Bearer {mint_token(_SETTINGS, ['dci'], subject='fuzz-client', area='3607')}"}


async def _prepare() -> None:
    admin = mint_token(_SETTINGS, "admin", subject="admin-1")
    async with running_app(_APP, admin) as client:
        assert (await client.post("/v1/households", json=household_body())).status_code == 201
        for sender in ("spp.example.org", "a", "0"):  # the spec's example sender_id and short ones generators favour
            created = await client.post("/v1/admin/dci/senders", json={
                "sender_id": sender, "client_id": "fuzz-client", "name": "fuzz", "callback_uri": "https://cb.example.cn"})
            assert created.status_code == 201, created.text


asyncio.run(_prepare())
schema = schemathesis.openapi.from_asgi("/openapi.json", _APP)


@schema.include(path_regex="^/registry/").parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck),
          database=None)
def test_dci_paths_answer_any_message_within_their_schema(case):
    _valid_header(case)
    response = case.call(headers=_HEADERS)
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance], headers=_HEADERS)


ACTIONS = {"/registry/search": "search", "/registry/subscribe": "subscribe", "/registry/unsubscribe": "unsubscribe",
           "/registry/txn/status": "txn-status", "/registry/sync/search": "search",
           "/registry/sync/txn/status": "txn-status"}
LISTS = {"search": "search_request", "subscribe": "subscribe_request", "unsubscribe": "subscription_codes"}


def _valid_header(case) -> None:
    """Most generated headers fail a check the message never gets past: give two in three a valid header, so
    the generated messages (queries, filters, codes, txn status) are what gets exercised."""
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("header"), dict) or hash(repr(body)) % 3 == 0:
        return
    action = ACTIONS[case.operation.path]
    message = body.get("message")
    listed = message.get(LISTS.get(action, "")) if isinstance(message, dict) else None
    body.pop("signature", None)
    body["header"].update(version="1.0.0", message_id=uuid.uuid4().hex, message_ts=now_ts(-5), action=action,
                          sender_id="spp.example.org", total_count=len(listed) if isinstance(listed, list) else 1,
                          is_msg_encrypted=False)
    for name in ("receiver_id", "sender_uri"):
        body["header"].pop(name, None)


def test_zz_the_worker_answers_every_message_the_fuzz_got_accepted():
    async def run() -> tuple[int, int, int]:
        async with _APP.router.lifespan_context(_APP):
            worker = DciWorker(_APP.state.sessionmaker, _SETTINGS, _APP.state.dci_signer,
                               transport=httpx.MockTransport(lambda request: httpx.Response(200, json={})))
            try:
                while await worker.deliver_due():
                    pass
            finally:
                await worker.close()
            async with _APP.state.sessionmaker() as session:
                taken = await session.scalar(select(func.count()).select_from(dci_transactions))
                delivered = await session.scalar(select(func.count()).select_from(dci_deliveries).where(
                    dci_deliveries.c.status == "delivered"))
                left = await session.scalar(select(func.count()).select_from(dci_deliveries).where(
                    dci_deliveries.c.status != "delivered"))
        return taken, delivered, left
    taken, delivered, left = asyncio.run(run())
    print(f"DCI fuzz: {taken} messages taken, {delivered} callbacks delivered, {left} left")
    assert left == 0
