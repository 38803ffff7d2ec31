"""The OpenAPI examples are what the demo district really answers (issue 12, item 2).

shared/openapi_docs/examples/<service>.json holds, per operation, the request of each example (path and
query parameters, headers, body, the token: scopes, or a partner token got earlier) and the response it got
from the demo district (`jingzhun demo-data`, events piped to benefits and audit as the relay and the
consumers would). Here the demo is loaded into fresh databases and:

1. every read example (GET) is sent again to the untouched demo, and the answer must equal the example on
   every field but the volatile ones (timestamps, generated ids, hashes: listed below and per example under
   `volatile`); a text answer (`/metrics`, the dashboard's HTML, a CSV export) must have the example's media
   type and first line;
2. then every write example, and the reads that need one (`"phase": "writes"`), is sent in the order of the
   file (registry, benefits, audit) and compared the same way. A step may keep values of its answer for later
   steps (`capture`: variable → field path), a later step puts them into its request (`bind`: slot → variable,
   e.g. `"path.client_id": "bank_id"`), and `"auth": "bearer:<variable>"` sends a captured token instead of a
   development one (partners call with their own OAuth2 token). `setup` names a preparation below (a dead
   letter kept the way the consumer keeps one; a pass of the registry's DCI worker calling a partner back),
   `poll` repeats a read until a background job has finished. A step may also say whose token it sends:
   `scopes`, `area` and `subject` of a development token (a DCI partner: scope dci, area 360703, its client id).

To record the examples again after a change of shapes:
    JZ_RECORD_OPENAPI_EXAMPLES=1 .venv/bin/pytest -q tests/integration/test_openapi_docs.py -k sqlite
then review `git diff shared/openapi_docs/examples/`.
"""
from __future__ import annotations

import asyncio
import copy
import json
import os
import re
from datetime import timedelta

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import desc, func, select

from jingzhun_cli.demo import EVALUATION_DATE, load_demo_district
from shared.auth import mint_token
from shared.config import AuditSettings, BenefitsSettings, RegistrySettings
from shared.openapi_docs import HERE, SERVICES, examples
from tests.helpers import running_app
from tests.integration.audit.test_demo_anomalies import _pipe

RECORD = os.environ.get("JZ_RECORD_OPENAPI_EXAMPLES") == "1"
#: Differ on every load: when it happened, generated ids, hashes and signatures over them.
VOLATILE = {"created_at", "updated_at", "recorded_at", "received_at", "time", "at", "event_id", "record_id",
            "hash", "prev_hash", "signature", "signer", "decided_at", "computed_at", "started_at", "finished_at",
            "generated_at", "checked_at", "ingested_at", "occurred_at", "etag", "decision_id", "id_number_hash",
            "ledger_signature",
            # keyed by the machine's own identity key (var/identity.key on a fresh clone): another machine, another ref
            "person_ref",
            # DCI envelopes (services/registry/dci/): every acknowledgement, answer and callback header is made
            # afresh: its correlation and message ids (UUID hex) and its instants
            "correlation_id", "message_id", "message_ts", "timestamp"}
JSON_MEDIA = ("application/json", "application/problem+json")
TEXT_LINES = 6  # a text answer's example: its first lines


#: Values generated afresh on every load (household, person, visit, import and partner client ids, UUIDs,
#: hashes, instants): compared as a kind.
GENERATED = re.compile(r"^(?:(?:[pv]|hh|imp)-[0-9a-f]{8,32}|jzc_[0-9a-f]{16}"
                       r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{40,128}"
                       r"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[.\d]*(?:Z|[+-]\d\d:\d\d))$")


def strip(value, volatile: set[str]):
    if isinstance(value, dict):
        return {GENERATED.sub("<generated>", k): strip(v, volatile) for k, v in value.items() if k not in volatile}
    if isinstance(value, list):
        return [strip(v, volatile) for v in value]
    if isinstance(value, str):
        return GENERATED.sub("<generated>", value)
    return value


def differences(got, want, path="$") -> list[str]:
    if isinstance(got, dict) and isinstance(want, dict):
        return [d for k in sorted(set(got) | set(want), key=str)
                for d in (differences(got.get(k), want.get(k), f"{path}.{k}") if k in got and k in want
                          else [f"{path}.{k}: only in {'answer' if k in got else 'example'}"])]
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        return [d for i, (g, w) in enumerate(zip(got, want)) for d in differences(g, w, f"{path}[{i}]")]
    return [] if got == want else [f"{path}: answer {json.dumps(got, ensure_ascii=False)[:120]} "
                                   f"example {json.dumps(want, ensure_ascii=False)[:120]}"]


@pytest.fixture
async def demo(databases, tmp_path):
    # A port that accepts connections stands in for the broker the launcher starts: /readyz checks only that
    # it is reachable, and nothing here produces or consumes (the events are piped by hand).
    broker = await asyncio.start_server(lambda reader, writer: writer.close(), "127.0.0.1", 0)
    bootstrap = "127.0.0.1:%d" % broker.sockets[0].getsockname()[1]
    common = dict(var_dir=tmp_path, kafka_bootstrap=bootstrap, log_json=False, run_consumer=False)
    # The DCI worker (callbacks to partners) does not run on its own here: the `dci_*` setups below run its passes
    # at set points, against the partner's endpoints in process, so every answer is the same on every run.
    registry_settings = RegistrySettings(database_url=await databases.url("registry"), dci_worker=False, **common)
    from services.audit.app import create_app as create_audit
    from services.benefits.app import create_app as create_benefits
    from services.registry.app import create_app as create_registry
    registry = create_registry(registry_settings)
    benefits = create_benefits(BenefitsSettings(database_url=await databases.url("benefits"),
                                                evaluation_date=EVALUATION_DATE, partner_rate_per_s=1000.0,
                                                partner_burst=1000, **common))
    audit = create_audit(AuditSettings(database_url=await databases.url("audit"), evaluation_date=EVALUATION_DATE,
                                       **common), id_hash_key="k", checkpoint_schedule=False)
    async with running_app(registry) as r, running_app(benefits) as b, running_app(audit) as a:
        await load_demo_district(registry.state.sessionmaker, registry_settings)
        await _pipe(registry, benefits, audit)
        yield {"clients": {"registry": r, "benefits": b, "audit": a}, "settings": registry_settings,
               "apps": {"registry": registry, "benefits": benefits, "audit": audit}}
    broker.close()


# ------------------------------------------------------------------------------------ requests
def _steps(slot: str) -> list[str | int]:
    return [int(part[1:-1]) if part.startswith("[") else part
            for part in re.findall(r"[^.\[\]]+|\[\d+\]", slot)]


def dig(value, path: str):
    for step in _steps(path):
        value = value[step]
    return value


def put(holder: dict, slot: str, value) -> None:
    steps = _steps(slot)
    for step in steps[:-1]:
        holder = holder.setdefault(step, {}) if isinstance(step, str) else holder[step]
    holder[steps[-1]] = value


def resolved(example: dict, context: dict) -> dict:
    """The example's request with its `bind` slots filled from earlier answers."""
    request = copy.deepcopy(example)
    for slot, variable in (example.get("bind") or {}).items():
        if variable not in context:
            raise AssertionError(f"{example.get('name')}: {variable!r} was not captured by an earlier step")
        put(request, slot, context[variable])
    return request


def _form_value(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


async def send(demo, service: str, key: str, example: dict, context: dict):
    method, template = key.split(" ", 1)
    path = template
    for name, value in (example.get("path") or {}).items():
        path = path.replace("{" + name + "}", str(value))
    headers = {name: str(value) for name, value in (example.get("headers") or {}).items()}
    auth = example.get("auth")
    if auth is None:
        headers["Authorization"] = "Bearer " + mint_token(demo["settings"], example.get("scopes", "admin"),
                                                          area=example.get("area"),
                                                          subject=example.get("subject", "dev-user"))
    elif auth.startswith("bearer:"):
        headers["Authorization"] = f"Bearer {context[auth.removeprefix('bearer:')]}"
    media, body, content = example.get("media_type", "application/json"), example.get("body"), {}
    if body is not None and media == "multipart/form-data":
        files = {field: (spec["filename"], body[field].encode("utf-8"), spec["content_type"])
                 for field, spec in example["files"].items()}
        content = {"files": files, "data": {k: _form_value(v) for k, v in body.items() if k not in files}}
    elif body is not None and media == "application/x-www-form-urlencoded":
        content = {"data": {k: _form_value(v) for k, v in body.items()}}
    elif body is not None:
        headers["Content-Type"] = media
        content = {"content": json.dumps(body, ensure_ascii=False).encode("utf-8")}
    client = demo["clients"][service]
    answer = await client.request(method, path, params=example.get("query"), headers=headers, **content)
    poll = example.get("poll")
    deadline = asyncio.get_running_loop().time() + 60
    while poll and answer.status_code == 200 and dig(answer.json(), poll["field"]) not in poll["until"]:
        assert asyncio.get_running_loop().time() < deadline, f"{key}: {answer.text[:300]}"
        await asyncio.sleep(0.1)
        answer = await client.request(method, path, params=example.get("query"), headers=headers, **content)
    return answer


def media_type(answer) -> str:
    return answer.headers.get("content-type", "").split(";")[0].strip()


def answer_value(answer):
    if media_type(answer) in JSON_MEDIA:
        return answer.json()
    return "\n".join(answer.text.splitlines()[:TEXT_LINES])


# --------------------------------------------------------------------------------------- setups
async def _dead_letter(demo, context: dict, service: str) -> None:
    """A genuine registry event (hh-demo-0002's newest, which the demo pipe never delivered) that the
    service's consumer gave up on while its database was away: kept by the consumer's own hook."""
    from services.audit.tables import dead_letters as audit_dead_letters
    from services.benefits.tables import dead_letters as benefits_dead_letters
    from services.registry.tables import outbox
    from shared.dead_letters import durable_dead_letter_hook, error_text

    async with demo["apps"]["registry"].state.sessionmaker() as session:
        row = (await session.execute(select(outbox).where(outbox.c.key == "hh-demo-0002")
                                     .order_by(desc(outbox.c.id)).limit(1))).one()
    key, value = row.key.encode(), row.payload.encode()
    record = ConsumerRecord(topic=row.topic, partition=0, offset=row.id - 1, timestamp=0, timestamp_type=0,
                            key=key, value=value, checksum=None, serialized_key_size=len(key),
                            serialized_value_size=len(value), headers=())
    app = demo["apps"][service]
    table = {"benefits": benefits_dead_letters, "audit": audit_dead_letters}[service]
    fault = RuntimeError(f"{service} database unavailable: connection refused")
    await durable_dead_letter_hook(app.state.sessionmaker, table)(record, service, error_text(fault))
    async with app.state.sessionmaker() as session:
        context["dead_letter_id"] = await session.scalar(select(func.max(table.c.id)))


#: The DCI partner of the examples (南康区民政局's social assistance system): where its endpoints are, and what
#: they answer to every callback when they are up (the spec's acknowledgement) and when they are down.
DCI_PARTNER_ACK = {"message": {"ack_status": "ACK", "timestamp": "2026-12-07T10:20:09+08:00",
                               "correlation_id": "partner-ack-1"}}
DCI_PARTNER_DOWN = {"errors": [{"code": "err.service.unavailable", "message": "社会救助系统维护中 / under maintenance"}]}


async def _dci_worker(demo, context: dict, *, up: bool) -> None:
    """Passes of the registry's DCI worker (services/registry/dci/worker.py) until nothing is due: each pending
    callback is answered, signed and POSTed to the partner. `up`: its endpoints ACK; else they answer 503 and
    every attempt fails, the clock moved past each backoff, until the last attempt leaves the delivery dead."""
    import httpx

    from services.registry.dci.envelope import now_utc
    from services.registry.dci.worker import DciWorker

    def partner(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=DCI_PARTNER_ACK) if up else httpx.Response(503, json=DCI_PARTNER_DOWN)

    app, settings = demo["apps"]["registry"], demo["settings"]
    worker = DciWorker(app.state.sessionmaker, settings, app.state.dci_signer, transport=httpx.MockTransport(partner))
    try:
        for _ in range(4 * settings.dci_callback_max_attempts):
            if not await worker.deliver_due(now=now_utc() + timedelta(seconds=settings.dci_callback_backoff_max_s + 1)):
                return
        raise AssertionError("the DCI worker still has deliveries due")
    finally:
        await worker.close()


SETUPS = {"dead_letter_benefits": lambda demo, context: _dead_letter(demo, context, "benefits"),
          "dead_letter_audit": lambda demo, context: _dead_letter(demo, context, "audit"),
          "dci_callbacks": lambda demo, context: _dci_worker(demo, context, up=True),
          "dci_partner_down": lambda demo, context: _dci_worker(demo, context, up=False)}


# ------------------------------------------------------------------------------------------ the test
def _phase(key: str, example: dict) -> str:
    return example.get("phase") or ("reads" if key.startswith("GET ") else "writes")


def _compare(service: str, key: str, example: dict, answer) -> list[str]:
    where = f"{service} {key} {example.get('name')}: {answer.status_code}"
    if answer.status_code != example["status"]:
        return [f"{where} (example {example['status']}): {answer.text[:300]}"]
    want = example.get("response_media_type", "application/json")
    if want not in JSON_MEDIA or media_type(answer) not in JSON_MEDIA:
        got = answer_value(answer)
        same = media_type(answer) == want and got.splitlines()[:1] == example["response"].splitlines()[:1]
        return [] if same else [f"{where}\n  {media_type(answer)}: {got[:200]!r}"]
    volatile = VOLATILE | set(example.get("volatile", []))
    found = differences(strip(answer.json(), volatile), strip(example["response"], volatile))
    return [f"{where}\n  " + "\n  ".join(found[:8])] if found else []


def _record(example: dict, request: dict, answer) -> None:
    for slot in (example.get("bind") or {}):  # the values this run used, as a reader will see them
        put(example, slot, dig(request, slot))
    example["status"], example["response"] = answer.status_code, answer_value(answer)
    if media_type(answer) in JSON_MEDIA:
        example.pop("response_media_type", None)
    else:
        example["response_media_type"] = media_type(answer)


async def test_examples_are_what_the_demo_answers(demo):
    checked, wrong, context = {"reads": 0, "writes": 0}, [], {}
    for phase in ("reads", "writes"):  # writes after every read saw the untouched demo
        for service in SERVICES:
            for key, items in examples(service).items():
                for example in items:
                    if _phase(key, example) != phase or example.get("replay") is False:
                        continue
                    if example.get("setup"):
                        await SETUPS[example["setup"]](demo, context)
                    request = resolved(example, context)
                    answer = await send(demo, service, key, request, context)
                    for variable, field in (example.get("capture") or {}).items():
                        assert answer.status_code < 400, f"{service} {key}: {answer.text[:300]}"
                        context[variable] = dig(answer.json(), field)
                    if RECORD:
                        _record(example, request, answer)
                        continue
                    checked[phase] += 1
                    wrong += _compare(service, key, example, answer)
    if RECORD:
        for service in SERVICES:
            (HERE / "examples" / f"{service}.json").write_text(
                json.dumps(examples(service), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        pytest.skip("examples recorded; review the diff")
    print(f"\nexamples replayed against the demo: {checked['reads']} reads of the untouched demo, "
          f"{checked['writes']} writes and reads after them")
    assert checked["reads"] >= 30 and checked["writes"] >= 40
    assert wrong == [], "\n".join(wrong)
