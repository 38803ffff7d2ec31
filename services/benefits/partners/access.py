"""Access records: every partner call goes to ``jz.access.v1`` through the benefits outbox."""
from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from services.benefits.tables import outbox
from shared.auth import Principal
from shared.config import TOPIC_ACCESS
from shared.events import Envelope, utcnow
from shared.idcard import mask_id_number
from shared.outbox import add_to_outbox

log = logging.getLogger("benefits.partners.access")


def client_of(principal: Principal) -> str:
    return principal.client_id or principal.subject


async def record_access(session: AsyncSession, principal: Principal, *, scope: str, endpoint: str,
                        id_number: str | None = None, decision_id: str | None = None,
                        decision: str | None = None, person: dict | None = None, eligible: bool | None = None,
                        outcome: dict | None = None) -> Envelope:
    """Stage the access event in the caller's transaction (commits with the decision it records).

    ``id_number`` may be given in clear: only its masked form leaves this function.
    ``person`` ({household_id, person_id}) lets audit answer "who looked at this person".
    ``eligible`` is the decision's yes/no where there is one (a loan subsidised, a stay paid), so
    audit never has to guess it from the ``decision`` word; ``outcome`` carries what followed
    (amounts, reasons, counts) without any ID number.
    """
    client_id = client_of(principal)
    masked = mask_id_number(id_number) if id_number else None
    now = utcnow()
    data = {"client_id": client_id, "scope": scope, "endpoint": endpoint, "id_number": masked,
            "decision_id": decision_id, "decision": decision, "time": now.isoformat()}
    if eligible is not None:
        data["eligible"] = eligible
    if outcome:
        data["outcome"] = outcome
    if person:
        data.update({k: v for k, v in person.items() if k in ("household_id", "person_id") and v})
    envelope = Envelope(source="benefits", type="partner.access", subject=f"client/{client_id}", time=now,
                        data=data, actor=principal.subject)
    await add_to_outbox(session, outbox, TOPIC_ACCESS, client_id, envelope)
    log.info("partner access %s %s", client_id, endpoint,
             extra={"fields": {"client_id": client_id, "scope": scope, "endpoint": endpoint,
                               "id_number": masked, "decision_id": decision_id, "decision": decision}})
    return envelope
