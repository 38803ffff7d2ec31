"""The OpenAPI examples are what the demo district really answers (issue 12, item 2).

shared/openapi_docs/examples/<service>.json holds, per operation, the request of each example (path and
query parameters, body, the scopes of the token) and the response it got from the demo district
(`jingzhun demo-data`, events piped to benefits and audit as the relay and the consumers would). Here the
demo is loaded into fresh databases, every read example (GET) is sent again, and the answer must equal
the example on every field but the volatile ones (timestamps, generated ids, hashes: listed below and per
example under `volatile`).

To record the examples again after a change of shapes:
    JZ_RECORD_OPENAPI_EXAMPLES=1 .venv/bin/pytest -q tests/integration/test_openapi_docs.py -k sqlite
then review `git diff shared/openapi_docs/examples/`.
"""
from __future__ import annotations

import json
import os
import re

import pytest

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
            "generated_at", "checked_at", "ingested_at", "occurred_at", "etag", "decision_id", "id_number_hash"}


#: Values generated afresh on every load (person and visit ids, UUIDs, hashes, instants): compared as a kind.
GENERATED = re.compile(r"^(?:[pv]-[0-9a-f]{8,32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
                       r"|[0-9a-f]{40,128}|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[.\d]*(?:Z|[+-]\d\d:\d\d))$")


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
    common = dict(var_dir=tmp_path, kafka_bootstrap="127.0.0.1:1", log_json=False, run_consumer=False)
    registry_settings = RegistrySettings(database_url=await databases.url("registry"), **common)
    from services.audit.app import create_app as create_audit
    from services.benefits.app import create_app as create_benefits
    from services.registry.app import create_app as create_registry
    registry = create_registry(registry_settings)
    benefits = create_benefits(BenefitsSettings(database_url=await databases.url("benefits"),
                                                evaluation_date=EVALUATION_DATE, **common))
    audit = create_audit(AuditSettings(database_url=await databases.url("audit"), evaluation_date=EVALUATION_DATE,
                                       **common), id_hash_key="k", checkpoint_schedule=False)
    async with running_app(registry) as r, running_app(benefits) as b, running_app(audit) as a:
        await load_demo_district(registry.state.sessionmaker, registry_settings)
        await _pipe(registry, benefits, audit)
        yield {"clients": {"registry": r, "benefits": b, "audit": a}, "settings": registry_settings}


async def send(demo, service: str, key: str, example: dict):
    method, template = key.split(" ", 1)
    path = template
    for name, value in (example.get("path") or {}).items():
        path = path.replace("{" + name + "}", str(value))
    token = mint_token(demo["settings"], example.get("scopes", "admin"), area=example.get("area"),
                       subject=example.get("subject", "dev-user"))
    return await demo["clients"][service].request(
        method, path, params=example.get("query"), json=example.get("body"),
        headers={"Authorization": f"Bearer {token}"})


async def test_read_examples_are_what_the_demo_answers(demo):
    checked, wrong = 0, []
    for service in SERVICES:
        recorded = examples(service)
        for key, items in recorded.items():
            for example in items:
                if RECORD and not key.startswith("GET "):
                    continue  # writes are recorded below, after every read saw the untouched demo
                if not key.startswith("GET ") or example.get("replay") is False:
                    continue
                answer = await send(demo, service, key, example)
                if RECORD:
                    example["status"], example["response"] = answer.status_code, answer.json()
                    continue
                volatile = VOLATILE | set(example.get("volatile", []))
                checked += 1
                found = differences(strip(answer.json(), volatile), strip(example["response"], volatile))
                if answer.status_code != example["status"] or found:
                    wrong.append(f"{service} {key} {example.get('name')}: {answer.status_code}\n  "
                                 + "\n  ".join(found[:8]))
    if RECORD:
        for service in SERVICES:
            for key, items in examples(service).items():
                for example in items:
                    if not key.startswith("GET ") and example.get("replay") is not False:
                        answer = await send(demo, service, key, example)
                        example["status"], example["response"] = answer.status_code, answer.json()
            (HERE / "examples" / f"{service}.json").write_text(
                json.dumps(examples(service), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        pytest.skip("examples recorded; review the diff")
    print(f"\nread examples replayed against the demo: {checked}")
    assert checked >= 20
    assert wrong == [], "\n".join(wrong)
