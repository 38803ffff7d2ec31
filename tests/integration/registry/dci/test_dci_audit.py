"""Every DCI search is in the ledger like a bank's look-up: the registry's partner.access event on jz.access.v1
is appended by audit (signed by the registry) and listed by supervision's partner-access view as a look-up,
with the client, scope dci, the household found and the masked number, never the clear one."""
from __future__ import annotations

import json

from sqlalchemy import select

from services.audit.app import create_app as create_audit
from services.audit.consumer import ingest
from services.registry.tables import outbox
from shared.auth import mint_token
from shared.config import TOPIC_ACCESS, AuditSettings
from shared.db import transaction
from shared.events import Envelope
from tests.helpers import running_app
from tests.integration.registry.dci.support import CLIENT, Partner, by_id_number, dci_registry, register, search_message


async def test_a_dci_search_is_a_partner_look_up_in_audit(databases, tmp_path):
    async with dci_registry(databases, tmp_path) as dci:
        partner = Partner(dci, dci.settings)
        await register(dci, partner)
        answer = await partner.post("/registry/sync/search", partner.header("search"),
                                    search_message(by_id_number("360782197803150018")))
        assert answer.status_code == 200
        async with dci.app.state.sessionmaker() as session:
            rows = (await session.execute(select(outbox.c.topic, outbox.c.payload)
                                          .where(outbox.c.topic == TOPIC_ACCESS))).all()
        assert len(rows) == 1
        audit = create_audit(AuditSettings(var_dir=tmp_path, database_url=await databases.url("audit"),
                                           kafka_bootstrap="127.0.0.1:1", log_json=False, run_consumer=False),
                             checkpoint_schedule=False)
        async with running_app(audit, mint_token(dci.settings, "audit:read", subject="auditor-1")) as auditor:
            for topic, payload in rows:
                async with transaction(audit.state.sessionmaker) as session:
                    await ingest(session, Envelope.model_validate_json(payload), f"{topic}:0", audit.state.settings)
            listed = await auditor.get("/v1/supervision/partner-access", params={"client_id": CLIENT})
            assert listed.status_code == 200, listed.text
            [item] = listed.json()["items"]
            assert item["scope"] == "dci" and item["kind"] == "lookup"
            assert item["household_id"] == dci.households[0]["id"]
            text = json.dumps(listed.json(), ensure_ascii=False)
            assert "360782197803150018" not in text and "360782********0018" in text
            verified = (await auditor.get("/v1/audit/verify")).json()
            assert verified["ok"] is True, verified
