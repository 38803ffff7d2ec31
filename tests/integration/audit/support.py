"""Builders for audit tests: envelopes shaped like the registry, benefits and partner APIs publish."""
from __future__ import annotations

import copy
import uuid
from datetime import date, datetime, timezone

from sqlalchemy import text

from services.audit.consumer import ingest
from shared.config import TOPIC_ACCESS, TOPIC_BENEFITS, TOPIC_REGISTRY
from shared.db import transaction
from shared.events import Envelope
from shared.idcard import make_id_number
from shared.personal_data import event_form, keyed_id_hasher
from tests.helpers import signed

# The identity key's hash (registry and benefits publish it beside every masked number; audit never holds the key).
TEST_IDENTITY_HASHER = keyed_id_hasher(b"test-identity-key")

VILLAGES = {
    "A": {"code": "360703105201", "name": "新村村", "township_code": "360703105", "township_name": "隆木乡",
          "is_poor_village": True, "is_deep_poverty_village": True},
    "B": {"code": "360703106202", "name": "坪市村", "township_code": "360703106", "township_name": "坪市乡",
          "is_poor_village": True, "is_deep_poverty_village": False},
    "C": {"code": "360703107203", "name": "赤土村", "township_code": "360703107", "township_name": "赤土乡",
          "is_poor_village": False, "is_deep_poverty_village": False},
}


def t(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=timezone.utc) if "+" not in value else datetime.fromisoformat(value)


def person(pid: str, seq: int, *, relation: str = "head", deceased: bool = False, id_number: str | None = None) -> dict:
    return {"id": pid, "name": f"成员{pid}", "sex": "M" if seq % 2 else "F", "birth_date": "1970-01-01",
            "id_number": id_number or make_id_number("360782", date(1970, 1, 1), seq), "relation": relation,
            "deceased": deceased}


def snapshot(hid: str, *, version: int = 1, status: str = "registered", village: str = "A", members=None,
             income: tuple[int, str] | None = (2019, "2800.00"), relocated: bool = False, moved_in: bool = False,
             exit_date: str | None = None, categories=None, cadres=None, seq: int = 1) -> dict:
    snap = {"id": hid, "version": version, "region_code": "360703", "village": copy.deepcopy(VILLAGES[village]),
            "status": status, "identified_year": 2014, "exit_date": exit_date,
            "categories": list(categories or ([] if not relocated else ["relocated"])),
            "income": {"year": income[0], "per_capita_net": income[1]} if income else None,
            "relocation": {"relocated": relocated, "moved_in": moved_in, "site_type": "town" if relocated else None},
            "members": members if members is not None else [person(f"{hid}-p1", seq)]}
    if cadres is not None:
        snap["cadres"] = cadres
    return snap


def registry_event(type_: str, snap: dict, *, time: str = "2020-01-01T00:00:00", step: dict | None = None,
                   visit: dict | None = None, actor: str = "office-1") -> Envelope:
    data = {"household": snap, "version": snap["version"]}
    if step:
        data["step"] = step
    if visit:
        data["visit"] = visit
    return Envelope(source="registry", type=type_, subject=f"household/{snap['id']}", sequence=snap["version"],
                    time=t(time), data=data, actor=actor)


POLICY = {"pack": "nankang-2020", "version": "2020.1", "chain": []}


def entitlement_item(program: str, change: str, *, person_id: str | None = None, amount="500.00",
                     unit: str = "year") -> dict:
    """One entry of an ``entitlements.decided`` event's ``entitlements`` list."""
    item = {"program": program, "person_id": person_id, "eligible": True, "amount": amount, "unit": unit,
            "period": "2020", "explanation": [], "source": {"seed": "001", "lines": "L1"}}
    before, after = (None, item) if change == "granted" else (item, None) if change == "revoked" else (item, item)
    return {"program": program, "person_id": person_id, "change": change, "before": before, "after": after}


def assessment_item(result: bool, unmet=(), kind: str = "exit_readiness") -> dict:
    return {"kind": kind, "before": None, "after": {"kind": kind, "result": result, "unmet": list(unmet)}}


def decided_event(hid: str, entitlements=(), assessments=(), *, version: int = 1,
                  time: str = "2020-01-02T00:00:00") -> Envelope:
    """benefits' one event per household version, listing what it granted, changed or revoked."""
    return Envelope(source="benefits", type="entitlements.decided", subject=f"household/{hid}", sequence=version,
                    time=t(time), actor="benefits-engine",
                    data={"household_id": hid, "household_version": version, "policy": POLICY,
                          "cause_event_id": None, "entitlements": list(entitlements), "assessments": list(assessments)})


def entitlement_event(hid: str, program: str, change: str, *, person_id: str | None = None, amount="500.00",
                      version: int = 1, time: str = "2020-01-02T00:00:00", unit: str = "year") -> Envelope:
    """A decision about one entitlement, as benefits publishes it (an ``entitlements.decided`` listing it)."""
    return decided_event(hid, [entitlement_item(program, change, person_id=person_id, amount=amount, unit=unit)],
                         version=version, time=time)


def assessment_event(hid: str, result: bool, unmet=(), *, version: int = 1,
                     time: str = "2020-01-02T00:00:00") -> Envelope:
    return decided_event(hid, assessments=[assessment_item(result, unmet)], version=version, time=time)


def legacy_entitlement_event(hid: str, program: str, change: str, *, person_id: str | None = None, amount="500.00",
                             version: int = 1, time: str = "2020-01-02T00:00:00", unit: str = "year") -> Envelope:
    """The one-event-per-entitlement shape benefits published before ``entitlements.decided`` (ledgers keep it)."""
    item = entitlement_item(program, change, person_id=person_id, amount=amount, unit=unit)
    return Envelope(source="benefits", type=f"entitlement.{change}", subject=f"household/{hid}", sequence=version,
                    time=t(time), actor="benefits-engine",
                    data={"household_id": hid, "household_version": version, **item, "policy": POLICY})


def legacy_assessment_event(hid: str, result: bool, unmet=(), *, version: int = 1,
                            time: str = "2020-01-02T00:00:00") -> Envelope:
    return Envelope(source="benefits", type="assessment.changed", subject=f"household/{hid}", sequence=version,
                    time=t(time), actor="benefits-engine",
                    data={"household_id": hid, "household_version": version, **assessment_item(result, unmet),
                          "policy": POLICY})


def access_event(client: str, id_number: str, endpoint: str, *, time: str, eligible: bool | None = True,
                 masked: bool = False) -> Envelope:
    from shared.idcard import mask_id_number
    return Envelope(source="benefits", type="partner.access", subject=f"client/{client}", time=t(time),
                    actor=client, data={"client_id": client, "scope": "credit", "endpoint": endpoint,
                                        "id_number": mask_id_number(id_number) if masked else id_number,
                                        "decision_id": str(uuid.uuid4()), "eligible": eligible, "time": time + "Z"})


def pairing_event(hid: str, cadre: str, action: str, *, time: str) -> Envelope:
    return Envelope(source="registry", type=f"cadre.{action}", subject=f"household/{hid}", time=t(time),
                    actor="office-1", data={"household_id": hid, "cadre_id": cadre})


TOPIC_OF = {"registry": TOPIC_REGISTRY, "benefits": TOPIC_BENEFITS}


async def feed(app, *envelopes: Envelope, partition: int = 0, topic: str | None = None) -> list:
    out = []
    for envelope in envelopes:
        chosen = topic or (TOPIC_ACCESS if envelope.type.startswith("partner.") else TOPIC_OF[envelope.source])
        if envelope.signature is None:  # as its source would have staged it: numbers masked + keyed hash, signed
            envelope.data = event_form(envelope.data, TEST_IDENTITY_HASHER)
            signed(envelope, app.state.settings.var_dir)
        async with transaction(app.state.sessionmaker) as session:
            out.append(await ingest(session, envelope, f"{chosen}:{partition}", app.state.settings))
    return out


async def tamper(app, sql: str, params: dict | None = None) -> None:
    """Run SQL with the append-only triggers out of the way (as an attacker with DB rights would)."""
    engine = app.state.engine
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            await conn.execute(text("DROP TRIGGER IF EXISTS ledger_records_no_update"))
            await conn.execute(text("DROP TRIGGER IF EXISTS ledger_records_no_delete"))
        await conn.execute(text(sql), params or {})


def village_event(village: dict, version: int = 1, *, time: str = "2020-01-01T00:00:00") -> Envelope:
    return Envelope(source="registry", type="village.updated", subject=f"village/{village['code']}",
                    sequence=version, time=t(time), actor="office-1", data={"village": village, "version": version})
