"""A DCI partner for the tests: registered sender, tokens, messages, and a callback receiver that checks
every callback's signature and shape (docs/dci.md)."""
from __future__ import annotations

import base64
import json
import uuid
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.registry.app import create_app
from services.registry.dci.envelope import parse_signature, sign, signing_string
from shared.auth import mint_token
from shared.config import RegistrySettings
from tests.helpers import household_body, running_app
from tests.integration.registry.dci.spec import validate_callback

CALLBACK_BASE = "https://sr-client.mca.example.cn/dci"
SENDER = "mca.nankang.example.cn"  # 南康区民政局 社会救助系统
CLIENT = "jzc_mca_nankang"


def now_ts(delta_s: float = 0) -> str:
    return (datetime.now(timezone(timedelta(hours=8))) + timedelta(seconds=delta_s)).isoformat(timespec="seconds")


class Receiver:
    """The sender's DCI endpoints: records what the registry calls back, answers what the test says."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.fail_with: int | None = None
        self.public_key: Ed25519PublicKey | None = None
        self.problems: list[str] = []
        self.app = FastAPI()

        @self.app.post("/{path:path}")
        async def receive(path: str, request: Request):
            body = json.loads(await request.body())
            if self.fail_with:
                return JSONResponse({"errors": [{"code": "err.service.unavailable", "message": "down"}]},
                                    status_code=self.fail_with)
            self._check(path, body)
            self.calls.append(("/" + path, body))
            return {"message": {"ack_status": "ACK", "timestamp": now_ts(), "correlation_id": uuid.uuid4().hex}}

    def _check(self, path: str, body: dict) -> None:
        params = parse_signature(body.get("signature") or "")
        try:
            raw = base64.b64decode(params["signature"])
            self.public_key.verify(raw, signing_string(int(params["created"]), int(params["expires"]),
                                                       body["header"], body.get("message")))
        except Exception as exc:  # noqa: BLE001 — the test asserts the list stays empty
            self.problems.append(f"{path}: bad signature {exc!r}")
        self.problems += validate_callback("/" + path.removeprefix("dci/"), body)

    def at(self, path: str) -> list[dict]:
        return [body for called, body in self.calls if called.endswith(path)]


class Partner:
    """A system that speaks DCI to the registry: its key, its token, its messages."""

    def __init__(self, client: httpx.AsyncClient, settings: RegistrySettings, *, sender_id: str = SENDER,
                 area: str | None = "360703", signing: bool = False) -> None:
        self.client, self.settings, self.sender_id = client, settings, sender_id
        self.key = Ed25519PrivateKey.generate() if signing else None
        self.token = mint_token(settings, ["dci"], subject=CLIENT, area=area)

    @property
    def public_pem(self) -> str | None:
        if self.key is None:
            return None
        return self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def header(self, verb: str, total: int = 1, **changes) -> dict:
        header = {"version": "1.0.0", "message_id": uuid.uuid4().hex, "message_ts": now_ts(), "action": verb,
                  "sender_id": self.sender_id, "sender_uri": CALLBACK_BASE, "receiver_id": "registry.jingzhun.local",
                  "total_count": total, "is_msg_encrypted": False}
        header.update(changes)
        return {k: v for k, v in header.items() if v is not None}

    def envelope(self, header: dict, message: dict) -> dict:
        body = {"header": header, "message": message}
        if self.key is not None:
            body["signature"] = sign(self.key, f"{self.sender_id}|k1|ed25519", header, message)
        return body

    async def post(self, path: str, header: dict, message: dict, *, token: str | None = None) -> httpx.Response:
        return await self.client.post(path, json=self.envelope(header, message),
                                      headers={"Authorization": f"Bearer {token or self.token}"})


def search_message(*queries: tuple[str, object], entity: str | None = None, page_size: int = 10,
                   transaction_id: str | None = None) -> dict:
    items = []
    for index, (query_type, query) in enumerate(queries):
        criteria = {"version": "1.0.0", "reg_event_type": "REGISTER", "query_type": query_type, "query": query,
                    "pagination": {"page_size": page_size, "page_number": 1}}
        if entity:
            criteria["response_entity"] = entity
        items.append({"reference_id": f"ref-{index + 1}", "timestamp": now_ts(), "search_criteria": criteria,
                      "locale": "zho"})
    return {"transaction_id": transaction_id or uuid.uuid4().hex, "search_request": items}


def by_id_number(number: str) -> tuple[str, dict]:
    return "idtype-value", {"type": "NID", "value": number}


@asynccontextmanager
async def dci_registry(databases, tmp_path, **settings_changes):
    """A registry with the worker on, its callbacks going to a Receiver in process, and two households:
    钟大山's in 南康区 (360703) and 刘秀英's in 南康区's neighbour 360782."""
    options = {"kafka_bootstrap": "127.0.0.1:1", "log_json": False, "run_consumer": False, "dci_worker_poll_s": 0.05,
               **settings_changes}
    settings = RegistrySettings(var_dir=tmp_path, database_url=await databases.url("registry"), **options)
    receiver = Receiver()
    app = create_app(settings, dci_transport=httpx.ASGITransport(app=receiver.app))
    admin = mint_token(settings, "admin", subject="admin-1")
    async with running_app(app, admin) as client:
        receiver.public_key = app.state.dci_signer.private_key.public_key()
        first = await client.post("/v1/households", json=household_body("nankang-farmer"))
        assert first.status_code == 201, first.text
        other = household_body("nankang-dibao-elderly", region_code="360782")
        other["village"] = {**other["village"], "code": "360782100201", "township_code": "360782100"}
        second = await client.post("/v1/households", json=other)
        assert second.status_code == 201, second.text
        client.app, client.settings, client.receiver = app, settings, receiver
        client.households = (first.json(), second.json())
        yield client


async def register(client: httpx.AsyncClient, partner: Partner, **changes) -> dict:
    body = {"sender_id": partner.sender_id, "client_id": CLIENT, "name": "南康区民政局社会救助系统",
            "callback_uri": CALLBACK_BASE, "public_key": partner.public_pem, **changes}
    response = await client.post("/v1/admin/dci/senders", json={k: v for k, v in body.items() if v is not None})
    assert response.status_code == 201, response.text
    return response.json()
