"""The DCI Social Registry API v1.0.0 on the registry, end to end (issue 14, docs/dci.md).

A partner (南康区民政局's social assistance system) is registered as a sender; it searches by ID number
synchronously and asynchronously, asks for transaction status, subscribes to household changes, is notified,
unsubscribes. A callback receiver in process checks every callback's signature and shape; every request and
answer is validated against the registry's OpenAPI document and, where it is on the machine, the public spec.
"""
from __future__ import annotations

import json
import re
import uuid

import httpx
import pytest
from sqlalchemy import select

from services.registry.dci.consumer import apply_registry_event
from services.registry.tables import dci_deliveries, outbox
from shared.auth import mint_token
from shared.config import TOPIC_ACCESS, TOPIC_REGISTRY
from shared.signing import trusted_keys
from tests.helpers import eventually
from tests.integration.registry.dci.spec import validate_exchange
from tests.integration.registry.dci.support import (CALLBACK_BASE, CLIENT, Partner, by_id_number, dci_registry,
                                                    now_ts, register, search_message)

HEAD_NUMBER = "360782197803150018"  # 钟大山, head of the nankang-farmer household (南康区 360703)
CLEAR_NUMBER = re.compile(r"\b\d{17}[\dX]\b")


async def exchange(partner: Partner, path: str, header: dict, message: dict, *, request_valid: bool = True, **kw):
    response = await partner.post(path, header, message, **kw)
    problems = validate_exchange(path, partner.envelope(header, message), response.status_code, response.json(),
                                 request_valid=request_valid)
    assert problems == [], problems
    return response


@pytest.fixture
async def dci(databases, tmp_path):
    async with dci_registry(databases, tmp_path, dci_callback_backoff_s=0.05, dci_callback_max_attempts=3) as client:
        yield client


async def test_sync_search_by_id_number_answers_the_household_masked_and_logs_the_access(dci):
    partner = Partner(dci, dci.settings)
    await register(dci, partner)
    message = search_message(by_id_number(HEAD_NUMBER))
    response = await exchange(partner, "/registry/sync/search", partner.header("search"), message)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["header"]["action"] == "on-search" and body["header"]["status"] == "succ"
    assert body["header"]["receiver_id"] == partner.sender_id
    assert body["message"]["transaction_id"] == message["transaction_id"]
    [item] = body["message"]["search_response"]
    assert item["reference_id"] == "ref-1" and item["status"] == "succ"
    assert item["pagination"] == {"page_size": 10, "page_number": 1, "total_count": 1}
    [record] = item["data"]["reg_records"]
    assert record["@type"] == "Household" and record["household_identifier"] == dci.households[0]["id"]
    text = json.dumps(body, ensure_ascii=False)
    assert "钟大山" in text or "钟" in text
    assert not CLEAR_NUMBER.search(text), "a partner without admin never gets a clear ID number"
    assert '"birth_date"' not in text
    # the answer is signed with the key the registry publishes
    keys = (await dci.get("/registry/.well-known/dci-keys")).json()["keys"]
    assert keys[0]["crv"] == "Ed25519" and keys[0]["kid"].startswith("registry.jingzhun.local|")
    # one access event for audit, masked number, the household found
    async with dci.app.state.sessionmaker() as session:
        payloads = (await session.execute(select(outbox.c.payload).where(outbox.c.topic == TOPIC_ACCESS))).scalars().all()
    [event] = [json.loads(p) for p in payloads]
    assert event["type"] == "partner.access" and event["source"] == "registry"
    assert event["data"]["scope"] == "dci" and event["data"]["client_id"] == CLIENT
    assert event["data"]["id_number"] == "360782********0018"
    assert event["data"]["household_id"] == dci.households[0]["id"]
    assert event["data"]["outcome"]["total_count"] == 1


async def test_async_search_acks_then_calls_back_and_txn_status_reports_it(dci):
    partner = Partner(dci, dci.settings)
    await register(dci, partner)
    message = search_message(by_id_number(HEAD_NUMBER), ("idtype-value", {"type": "户编号", "value": "hh-none"}))
    response = await exchange(partner, "/registry/search", partner.header("search", total=2), message)
    assert response.status_code == 200, response.text
    ack = response.json()["message"]
    assert ack["ack_status"] == "ACK" and ack["correlation_id"]
    [callback] = await eventually(lambda: _at(dci, "/registry/on-search"), timeout=10)
    assert callback["header"]["action"] == "on-search"
    assert callback["message"]["transaction_id"] == message["transaction_id"]
    assert callback["message"]["correlation_id"] == ack["correlation_id"]
    found, missing = callback["message"]["search_response"]
    assert found["pagination"]["total_count"] == 1 and missing["pagination"]["total_count"] == 0
    assert dci.receiver.problems == []

    status_message = {"transaction_id": uuid.uuid4().hex, "txnstatus_request": {
        "reference_id": "st-1", "txn_type": "search", "attribute_type": "transaction_id",
        "attribute_value": message["transaction_id"]}}
    sync = await exchange(partner, "/registry/sync/txn/status", partner.header("txn-status"), status_message)
    assert sync.status_code == 200, sync.text
    status = sync.json()["message"]["txnstatus_response"]
    assert status["txn_type"] == "search"
    assert status["txn_status"]["correlation_id"] == ack["correlation_id"]
    assert status["txn_status"]["search_response"][0]["data"]["reg_records"][0]["household_identifier"] == \
        dci.households[0]["id"]

    status_message["transaction_id"] = uuid.uuid4().hex
    status_message["txnstatus_request"].update(attribute_type="correlation_id", attribute_value=ack["correlation_id"])
    asynchronous = await exchange(partner, "/registry/txn/status", partner.header("txn-status"), status_message)
    assert asynchronous.json()["message"]["ack_status"] == "ACK"
    [on_status] = await eventually(lambda: _at(dci, "/registry/txn/on-status"), timeout=10)
    assert on_status["header"]["action"] == "txn-on-status" and on_status["header"]["status"] == "succ"
    assert on_status["message"]["txnstatus_response"]["txn_status"]["correlation_id"] == ack["correlation_id"]
    assert dci.receiver.problems == []


async def _at(dci, path):
    return dci.receiver.at(path)


async def test_a_resent_message_gets_the_same_answer_and_a_reused_id_is_refused(dci):
    partner = Partner(dci, dci.settings)
    await register(dci, partner)
    header, message = partner.header("search"), search_message(by_id_number(HEAD_NUMBER))
    first = (await partner.post("/registry/search", header, message)).json()["message"]
    await eventually(lambda: _at(dci, "/registry/on-search"), timeout=10)
    again = (await partner.post("/registry/search", header, message)).json()["message"]
    assert again["correlation_id"] == first["correlation_id"]
    assert again["ack_status"] == "NACK", "the callback went out already: nothing more follows"
    assert len(dci.receiver.at("/registry/on-search")) == 1
    other = search_message(by_id_number(HEAD_NUMBER))
    reused = await exchange(partner, "/registry/search", header, other, request_valid=False)
    assert reused.status_code == 400
    error = reused.json()["message"]
    assert error["ack_status"] == "ERR" and error["error"]["code"] == "err.request.bad"
    assert error["error"]["message"].startswith("rjct.message_id.duplicate")
    # the synchronous path replays its stored answer too
    sync_header = partner.header("search")
    one = (await partner.post("/registry/sync/search", sync_header, message)).json()
    two = (await partner.post("/registry/sync/search", sync_header, message)).json()
    assert one["message"] == two["message"] and one["header"]["message_id"] == two["header"]["message_id"]


BAD_HEADERS = [
    ({"message_ts": "2026-12-07T10:20:07"}, "err.request.bad", "rjct.message_ts.invalid"),
    ({"message_ts": "2026-12-07"}, "err.request.bad", "rjct.message_ts.invalid"),
    ({"action": "subscribe"}, "err.request.bad", "rjct.action.invalid"),
    ({"version": "2.0.0"}, "err.version.not_supported", "rjct.version.invalid"),
    ({"total_count": 2}, "err.request.bad", "rjct.total_count.invalid"),
    ({"total_count": "1"}, "err.request.bad", "rjct.total_count.invalid"),
    ({"message_id": "m" * 100}, "err.request.bad", None),
    ({"receiver_id": "someone.else"}, "err.receiver_id.invalid", None),
    ({"is_msg_encrypted": True}, "err.encryption.invalid", None),
    ({"sender_id": "unknown.example.cn"}, "err.sender_id.invalid", None),
    ({"sender_uri": "https://evil.example.com/dci"}, "err.sender_uri.invalid", None),
    ({"sender_uri": "https://sr-client.mca.example.cn/dcix"}, "err.sender_uri.invalid", None),
    ({"sender_uri": "http://127.0.0.1:5432/"}, "err.sender_uri.invalid", None),
]


@pytest.mark.parametrize("changes,code,reason", BAD_HEADERS)
async def test_a_bad_header_is_an_err_with_the_spec_code_and_nothing_is_stored(dci, changes, code, reason):
    partner = Partner(dci, dci.settings)
    await register(dci, partner)
    response = await exchange(partner, "/registry/search", partner.header("search", **changes),
                              search_message(by_id_number(HEAD_NUMBER)), request_valid=False)
    assert response.status_code == 400, response.text
    error = response.json()["message"]
    assert error["ack_status"] == "ERR" and error["error"]["code"] == code
    assert (reason is None) or error["error"]["message"].startswith(reason)
    assert re.search(r"[\u4e00-\u9fff]", error["error"]["message"]) and re.search(r"[A-Za-z]{4}", error["error"]["message"])
    async with dci.app.state.sessionmaker() as session:
        assert (await session.execute(select(dci_deliveries))).first() is None


BAD_MESSAGES = [
    {"transaction_id": "t"},
    {"transaction_id": "", "search_request": [{}]},
    {"transaction_id": "t", "search_request": []},
    {"transaction_id": "t", "search_request": [{"reference_id": "r"}]},
    {"transaction_id": "t", "search_request": [{"reference_id": "r", "search_criteria": {}, "locale": "zh"}]},
    {"transaction_id": "t", "search_request": ["x"]},
    {"header": {"alg": "A"}, "ciphertext": "x", "encrypted_key": "x", "iv": "x", "tag": "x"},
]


@pytest.mark.parametrize("message", BAD_MESSAGES)
async def test_a_malformed_message_is_an_err(dci, message):
    partner = Partner(dci, dci.settings)
    await register(dci, partner)
    response = await partner.post("/registry/search", partner.header("search"), message)
    assert response.status_code == 400, response.text
    assert response.json()["message"]["ack_status"] == "ERR"


async def test_a_text_value_with_a_nul_character_is_an_err_and_nothing_is_stored(dci):
    """Found by the DCI fuzz: an accepted request whose codes held U+0000 failed later, in the worker, when
    the database refused the look-up. Refused at once, in the spec's shape."""
    partner = Partner(dci, dci.settings)
    await register(dci, partner)
    message = search_message(by_id_number(HEAD_NUMBER), transaction_id="t-nul")
    message["search_request"][0]["reference_id"] = "ref\u0000-1"
    response = await partner.post("/registry/search", partner.header("search"), message)
    assert response.status_code == 400, response.text
    error = response.json()["message"]["error"]
    assert error["code"] == "err.request.bad" and "NUL" in error["message"], error
    async with dci.app.state.sessionmaker() as session:
        assert (await session.execute(select(dci_deliveries))).first() is None


async def test_tokens_scopes_and_senders_are_checked_in_the_spec_error_shape(dci):
    partner = Partner(dci, dci.settings)
    await register(dci, partner)
    header, message = partner.header("search"), search_message(by_id_number(HEAD_NUMBER))
    missing = await dci.post("/registry/search", json=partner.envelope(header, message), headers={"Authorization": ""})
    assert missing.status_code == 401 and missing.json()["errors"][0]["code"] == "err.request.unauthorized"
    garbage = await partner.post("/registry/search", header, message, token="not.a.token")
    assert garbage.status_code == 401 and garbage.json()["errors"][0]["code"] == "err.request.unauthorized"
    no_scope = mint_token(dci.settings, ["registry:read"], subject=CLIENT)
    forbidden = await exchange(partner, "/registry/search", header, message, token=no_scope)
    assert forbidden.status_code == 403 and forbidden.json()["errors"][0]["code"] == "err.request.forbidden"
    impostor = mint_token(dci.settings, ["dci"], subject="jzc_someone_else")
    other = await partner.post("/registry/search", partner.header("search"), message, token=impostor)
    assert other.status_code == 403 and other.json()["errors"][0]["code"] == "err.request.forbidden"
    await dci.patch(f"/v1/admin/dci/senders/{partner.sender_id}", json={"status": "disabled"})
    disabled = await partner.post("/registry/search", partner.header("search"), message)
    assert disabled.status_code == 400 and disabled.json()["message"]["error"]["code"] == "err.sender_id.invalid"


async def test_a_signing_sender_must_sign_and_its_signature_is_checked(dci):
    partner = Partner(dci, dci.settings, signing=True)
    await register(dci, partner)
    message = search_message(by_id_number(HEAD_NUMBER))
    good = await exchange(partner, "/registry/sync/search", partner.header("search"), message)
    assert good.status_code == 200, good.text
    header = partner.header("search")
    unsigned = await dci.post("/registry/sync/search", json={"header": header, "message": message},
                              headers={"Authorization": f"Bearer {partner.token}"})
    assert unsigned.status_code == 401 and unsigned.json()["errors"][0]["code"] == "err.signature.missing"
    tampered = partner.envelope(header, message)
    tampered["message"]["search_request"][0]["search_criteria"]["query"]["value"] = "360782197803180014"
    forged = await dci.post("/registry/sync/search", json=tampered, headers={"Authorization": f"Bearer {partner.token}"})
    assert forged.status_code == 401 and forged.json()["errors"][0]["code"] == "err.signature.invalid"
    unsigning = Partner(dci, dci.settings, sender_id="other.sender.cn")
    await register(dci, unsigning)
    stray = unsigning.envelope(unsigning.header("search"), message)
    stray["signature"] = partner.envelope(header, message)["signature"]
    refused = await dci.post("/registry/sync/search", json=stray, headers={"Authorization": f"Bearer {unsigning.token}"})
    assert refused.status_code == 401 and refused.json()["errors"][0]["code"] == "err.signature.invalid"


async def test_another_areas_household_is_not_found_nor_counted(dci):
    partner = Partner(dci, dci.settings, area="360782")
    await register(dci, partner)
    response = await exchange(partner, "/registry/sync/search", partner.header("search"),
                              search_message(by_id_number(HEAD_NUMBER)))
    [item] = response.json()["message"]["search_response"]
    assert item["status"] == "succ" and item["pagination"]["total_count"] == 0 and item["data"]["reg_records"] == []


async def test_bad_criteria_are_rejected_per_item_with_the_spec_reason(dci):
    partner = Partner(dci, dci.settings)
    await register(dci, partner)
    message = search_message(by_id_number(HEAD_NUMBER), ("idtype-value", {"type": "PASSPORT", "value": "E123"}),
                             ("sql", "select *"))
    message["search_request"][1]["reference_id"] = "ref-1"
    response = await exchange(partner, "/registry/sync/search", partner.header("search", total=3), message,
                              request_valid=False)
    ok, duplicate, unknown = response.json()["message"]["search_response"]
    assert ok["status"] == "succ"
    assert duplicate["status"] == "rjct" and duplicate["status_reason_code"] == "rjct.reference_id.duplicate"
    assert unknown["status"] == "rjct" and unknown["status_reason_code"] == "rjct.search_criteria.invalid"


async def _notify_household_events(dci) -> int:
    """What the registry's consumer does with each household event of jz.registry.v1 (the broker test runs the
    real consumer; this one hands it the outbox rows in order)."""
    staged = 0
    trusted = trusted_keys(dci.settings)
    async with dci.app.state.sessionmaker() as session:
        rows = (await session.execute(select(outbox.c.payload).where(outbox.c.topic == TOPIC_REGISTRY)
                                      .order_by(outbox.c.id))).scalars().all()
    for payload in rows:
        staged += await apply_registry_event(dci.app.state.sessionmaker, payload.encode() if isinstance(payload, str)
                                             else payload, trusted, registry_id=dci.settings.dci_receiver_id)
    return staged


async def test_subscribe_notify_unsubscribe(dci):
    partner = Partner(dci, dci.settings)
    await register(dci, partner)
    household = dci.households[0]
    village = household["village"]["code"]
    subscribe = {"transaction_id": uuid.uuid4().hex, "subscribe_request": [{
        "reference_id": "sub-1", "timestamp": now_ts(), "subscribe_criteria": {
            "version": "1.0.0", "reg_type": "ns:org:RegistryType:Social", "reg_event_type": "NewHouseHoldMember",
            "filter_type": "expression", "response_entity": "Household",
            "notify_record_type": "spdci-extensions-social:Household",
            "filter": {"type": "ns:org:QueryType:NoSql",
                       "value": {"expression": {"collection": "Household", "query": {"village_code": {"$eq": village}}}}}},
        "locale": "zho"}]}
    response = await exchange(partner, "/registry/subscribe", partner.header("subscribe"), subscribe)
    assert response.json()["message"]["ack_status"] == "ACK"
    [on_subscribe] = await eventually(lambda: _at(dci, "/registry/on-subscribe"), timeout=10)
    [item] = on_subscribe["message"]["subscribe_response"]
    assert item["status"] == "succ"
    code = item["subscriptions"][0]["code"]
    assert await _notify_household_events(dci) == 0, "registrations are not NewHouseHoldMember"

    member = {"name": "钟小山", "id_number": "360703201003150013", "sex": "M", "birth_date": "2010-03-15",
              "relation": "child"}
    added = await dci.post(f"/v1/households/{household['id']}/members", json=member)
    assert added.status_code in (200, 201), added.text
    assert await _notify_household_events(dci) == 1
    assert await _notify_household_events(dci) == 0, "a redelivered event notifies nobody twice"
    [notify] = await eventually(lambda: _at(dci, "/registry/notify"), timeout=10)
    assert notify["header"]["action"] == "notify" and notify["header"]["meta"]["subscription_code"] == code
    [event] = notify["message"]["notify_event"]
    assert event["data"]["reg_event_type"] == "NewHouseHoldMember"
    assert event["data"]["reg_records"]["household_identifier"] == household["id"]
    assert event["data"]["reg_records"]["registration_date"] and event["data"]["reg_records"]["last_update"]
    assert not CLEAR_NUMBER.search(json.dumps(notify, ensure_ascii=False))
    assert dci.receiver.problems == []

    unsubscribe = {"transaction_id": uuid.uuid4().hex, "timestamp": now_ts(), "subscription_codes": [code, "sub-nope"]}
    await exchange(partner, "/registry/unsubscribe", partner.header("unsubscribe", total=2), unsubscribe)
    [on_unsubscribe] = await eventually(lambda: _at(dci, "/registry/on-unsubscribe"), timeout=10)
    answer = on_unsubscribe["message"]
    assert answer["subscription_status"] == [{"code": code, "status": "unsubscribe"}]
    assert answer["status_reason_code"] == "rjct.subscription_code.invalid"
    member2 = {"name": "钟小河", "id_number": "36070320120415001X", "sex": "M", "birth_date": "2012-04-15",
               "relation": "child"}
    assert (await dci.post(f"/v1/households/{household['id']}/members", json=member2)).status_code in (200, 201)
    assert await _notify_household_events(dci) == 0, "an unsubscribed code is not notified"


async def test_a_failing_receiver_is_retried_then_dead_lettered_and_redriven(dci):
    partner = Partner(dci, dci.settings)
    await register(dci, partner)
    dci.receiver.fail_with = 503
    await partner.post("/registry/search", partner.header("search"), search_message(by_id_number(HEAD_NUMBER)))

    async def dead():
        listed = (await dci.get("/v1/admin/dci/deliveries", params={"status": "dead"})).json()
        return listed["items"]
    [row] = await eventually(dead, timeout=15)
    assert row["attempts"] == 3 and "HTTP 503" in row["last_error"] and row["action"] == "on-search"
    assert row["url"] == CALLBACK_BASE + "/registry/on-search"
    dci.receiver.fail_with = None
    redriven = await dci.post(f"/v1/admin/dci/deliveries/{row['id']}/redrive")
    assert redriven.status_code == 200 and redriven.json()["status"] == "pending"
    await eventually(lambda: _at(dci, "/registry/on-search"), timeout=10)
    again = await dci.post(f"/v1/admin/dci/deliveries/{row['id']}/redrive")
    assert again.status_code == 409


async def test_a_worker_killed_after_claiming_loses_nothing(databases, tmp_path):
    """A claimed delivery whose worker died is taken again when its lease runs out, and sent once."""
    from datetime import timedelta

    from services.registry.dci.envelope import now_utc
    from services.registry.dci.worker import DciWorker
    async with dci_registry(databases, tmp_path, dci_worker=False) as dci:
        partner = Partner(dci, dci.settings)
        await register(dci, partner)
        await partner.post("/registry/search", partner.header("search"), search_message(by_id_number(HEAD_NUMBER)))
        transport = httpx.ASGITransport(app=dci.receiver.app)
        first = DciWorker(dci.app.state.sessionmaker, dci.settings, dci.app.state.dci_signer, transport=transport)
        now = now_utc()
        assert len(await first._claim(now)) == 1  # … and the process is killed here
        second = DciWorker(dci.app.state.sessionmaker, dci.settings, dci.app.state.dci_signer, transport=transport)
        assert await second.deliver_due(now=now + timedelta(seconds=1)) == 0, "still leased by the dead worker"
        assert await second.deliver_due(now=now + second.lease + timedelta(seconds=1)) == 1
        assert len(dci.receiver.at("/registry/on-search")) == 1 and dci.receiver.problems == []
        assert await second.deliver_due(now=now + 2 * second.lease) == 0
        await first.close(), await second.close()


ADMIN_ROUTES = [("GET", "/v1/admin/dci/senders"), ("POST", "/v1/admin/dci/senders"),
                ("GET", "/v1/admin/dci/senders/mca.nankang.example.cn"),
                ("PATCH", "/v1/admin/dci/senders/mca.nankang.example.cn"), ("GET", "/v1/admin/dci/deliveries"),
                ("POST", "/v1/admin/dci/deliveries/1/redrive"), ("GET", "/v1/admin/dci/subscriptions")]


async def test_dci_administration_is_for_administrators_only(dci):
    partner = Partner(dci, dci.settings)
    await register(dci, partner)
    for scopes in (["dci"], ["registry:read", "registry:write"]):
        headers = {"Authorization": f"Bearer {mint_token(dci.settings, scopes, subject=CLIENT, area='360703')}"}
        for method, path in ADMIN_ROUTES:
            response = await dci.request(method, path, headers=headers, json={} if method != "GET" else None)
            assert response.status_code == 403, (scopes, method, path, response.text)
            assert response.json()["type"] == "https://jingzhun.dev/problems/forbidden"
    listed = (await dci.get("/v1/admin/dci/senders")).json()["items"]
    assert [s["sender_id"] for s in listed] == [partner.sender_id] and listed[0]["signs"] is False


async def test_without_a_signing_key_the_dci_paths_say_so_and_nothing_is_taken(dci, tmp_path):
    """Production without JZ_REGISTRY_DCI_SIGNING_KEY_FILE: dci_signer gives None (logged) and the paths answer
    503 err.service.unavailable naming the setting; the key file, once set, signs."""
    from services.registry.dci.worker import dci_signer
    from shared.signing import new_private_key_pem
    production = dci.settings.model_copy(update={"profile": "production", "dci_signing_key_file": None})
    assert dci_signer(production) is None
    key = tmp_path / "dci.pem"
    key.write_bytes(new_private_key_pem())
    assert dci_signer(production.model_copy(update={"dci_signing_key_file": key})).key_id.endswith("|ed25519")
    partner = Partner(dci, dci.settings)
    await register(dci, partner)
    dci.app.state.dci_signer = None
    response = await partner.post("/registry/sync/search", partner.header("search"),
                                  search_message(by_id_number(HEAD_NUMBER)))
    assert response.status_code == 503
    assert response.json()["errors"][0]["code"] == "err.service.unavailable"
    assert "JZ_REGISTRY_DCI_SIGNING_KEY_FILE" in response.json()["errors"][0]["message"]
    assert (await dci.get("/registry/.well-known/dci-keys")).json() == {"keys": []}


async def test_a_sender_disabled_or_moved_gets_nothing_more(databases, tmp_path):
    """Pending deliveries follow the sender's registration: disabled, or its callback URI changed, they are not
    sent but dead at once with the reason (a redrive after the sender is fixed sends them)."""
    from services.registry.dci.worker import DciWorker
    async with dci_registry(databases, tmp_path, dci_worker=False) as dci:
        partner = Partner(dci, dci.settings)
        await register(dci, partner)
        for _ in range(2):
            await partner.post("/registry/search", partner.header("search"), search_message(by_id_number(HEAD_NUMBER)))
        worker = DciWorker(dci.app.state.sessionmaker, dci.settings, dci.app.state.dci_signer,
                           transport=httpx.ASGITransport(app=dci.receiver.app))
        await dci.patch(f"/v1/admin/dci/senders/{partner.sender_id}", json={"callback_uri": "https://elsewhere.example.cn"})
        assert await worker.deliver_due() == 2
        dead = (await dci.get("/v1/admin/dci/deliveries", params={"status": "dead"})).json()["items"]
        assert len(dead) == 2 and all("no longer under" in d["last_error"] and d["attempts"] == 1 for d in dead)
        assert dci.receiver.calls == []
        await dci.patch(f"/v1/admin/dci/senders/{partner.sender_id}", json={"callback_uri": CALLBACK_BASE,
                                                                         "status": "disabled"})
        await dci.post(f"/v1/admin/dci/deliveries/{dead[0]['id']}/redrive")
        assert await worker.deliver_due() == 1 and dci.receiver.calls == []
        await dci.patch(f"/v1/admin/dci/senders/{partner.sender_id}", json={"status": "active"})
        for row in (await dci.get("/v1/admin/dci/deliveries", params={"status": "dead"})).json()["items"]:
            await dci.post(f"/v1/admin/dci/deliveries/{row['id']}/redrive")
        assert await worker.deliver_due() == 2
        assert len(dci.receiver.at("/registry/on-search")) == 2 and dci.receiver.problems == []
        await worker.close()


async def test_a_sender_change_to_null_is_a_422_not_a_server_error(dci):
    """Found by the whole-service fuzz: PATCH with "callback_uri": null reached the NOT NULL column (500)."""
    partner = Partner(dci, dci.settings)
    await register(dci, partner)
    for field in ("callback_uri", "name", "status"):
        response = await dci.patch(f"/v1/admin/dci/senders/{partner.sender_id}", json={field: None})
        assert response.status_code == 422, (field, response.text)
    cleared = await dci.patch(f"/v1/admin/dci/senders/{partner.sender_id}", json={"public_key": None})
    assert cleared.status_code == 200 and cleared.json()["callback_uri"] == CALLBACK_BASE
