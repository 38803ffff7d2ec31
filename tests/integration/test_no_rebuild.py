"""Issue 9 item 2: no output lets a caller who may not see ID numbers rebuild one.

A realistic flow runs on real registry, benefits and audit apps (registry events → benefits →
benefits events → audit ledger, in-process, SQLite and PostgreSQL): households created and changed,
members added, changed, moved and deceased, procedure steps, a cadre's pairing and visit, a ledger
import, entitlements, bank and insurer look-ups, loans, interest claims and settlements. Then every
operation of the three OpenAPI documents is either walked as a non-admin caller or named with the
reason it returns no persons (a new operation in neither list fails the test), and so is every
export format (CSV, XLSX) and every ledger record type.

For each JSON object (and each export row) the attacker takes every masked number in it and every
field of the same object that says something about a birth (an exact date, a year, an age) and
counts the birth dates that give a number passing the GB 11643 check digit. A number is rebuilt if
at most one candidate is left, if any field holds the clear number, or if any other field of the
object (whatever its name) holds the exact birth date.
"""
from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable

import httpx
import openpyxl
import pytest
from sqlalchemy import select

from services.audit.app import create_app as create_audit
from services.audit.consumer import ingest
from services.benefits.app import create_app as create_benefits
from services.benefits.consumer import apply_registry_event
from services.benefits.tables import outbox as benefits_outbox
from services.registry.app import create_app as create_registry
from services.registry.dci.consumer import stage_notifications
from services.registry.dci.worker import DciWorker
from services.registry.tables import outbox as registry_outbox
from shared.auth import mint_token
from shared.config import AuditSettings, BenefitsSettings, RegistrySettings
from shared.db import transaction
from shared.events import Envelope
from shared.idcard import check_digit, make_id_number
from tests.helpers import household_body, running_app

AS_OF = dt.date(2020, 6, 30)
MASKED = re.compile(r"(?<![\d*])(\d{6})\*{8}(\d{3}[\dX])(?![\d*])")
CLEAR = re.compile(r"(?<!\d)\d{17}[\dX](?!\d)")
ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")
BIRTH_DATE_FIELDS = {"birth_date", "出生日期", "date_of_birth", "born", "生日"}
BIRTH_YEAR_FIELDS = {"birth_year", "出生年份"}
AGE_FIELDS = {"age", "年龄"}
EARLIEST, LATEST = dt.date(1900, 1, 1), dt.date.today()

# Operations that return no person (no ID number, no birth date), with the reason. Everything else
# in the three OpenAPI documents must be walked below.
NO_PERSONS = {
    ("registry", "GET", "/healthz"): "liveness", ("registry", "GET", "/readyz"): "readiness",
    ("registry", "GET", "/metrics"): "counters",
    ("registry", "POST", "/v1/cadres"): "cadres carry no ID number (walked anyway)",
    ("registry", "PUT", "/v1/areas/{code}"): "areas", ("registry", "PATCH", "/v1/areas/{code}"): "areas",
    ("registry", "POST", "/v1/areas:bulk"): "areas", ("registry", "PUT", "/v1/villages/{code}/team"): "area team",
    ("registry", "DELETE", "/v1/households/{household_id}/pairings/{cadre_id}"): "a pairing",
    ("benefits", "GET", "/healthz"): "liveness", ("benefits", "GET", "/readyz"): "readiness",
    ("benefits", "GET", "/metrics"): "counters",
    ("benefits", "GET", "/v1/policies"): "policy packs", ("benefits", "GET", "/v1/policies/{pack}"): "a policy pack",
    ("benefits", "POST", "/oauth/token"): "a token", ("benefits", "GET", "/.well-known/jwks.json"): "public keys",
    ("benefits", "GET", "/v1/partners/clients"): "partner clients (admin only)",
    ("benefits", "POST", "/v1/partners/clients"): "partner clients (admin only)",
    ("benefits", "POST", "/v1/partners/clients/{client_id}:rotate"): "partner clients (admin only)",
    ("benefits", "POST", "/v1/partners/clients/{client_id}:disable"): "partner clients (admin only)",
    ("benefits", "POST", "/v1/recompute"): "a job (admin only)",
    ("benefits", "POST", "/v1/jobs/{job_id}/resume"): "a job (admin only)",
    ("benefits", "GET", "/v1/policies/publications"): "published policy packs",
    ("benefits", "GET", "/v1/policies/publications/{publication_id}"): "a published policy pack",
    ("benefits", "POST", "/v1/policies:validate"): "a pack's problems (admin only)",
    ("benefits", "POST", "/v1/policies:diff"): "a pack's changes (admin only)",
    ("benefits", "POST", "/v1/policies:simulate"): "counts and amounts per programme (admin only)",
    ("benefits", "POST", "/v1/policies:publish"): "a publication and its job (admin only)",
    ("audit", "GET", "/healthz"): "liveness", ("audit", "GET", "/readyz"): "readiness",
    ("audit", "GET", "/metrics"): "counters",
    ("audit", "POST", "/v1/audit/checkpoints"): "a checkpoint (admin only)",
    ("audit", "GET", "/v1/audit/verify"): "chain heads and counts (walked anyway)",
    ("registry", "POST", "/registry/unsubscribe"): "an ACK (its callback names codes only)",
    ("registry", "POST", "/oauth2/client/token"): "a token (DCI token API over benefits' partner clients)",
    # DCI administration, admin only: senders, delivery metadata (no bodies), subscriptions and their filters
    **{("registry", method, path): "DCI administration (admin only)" for method, path in (
        ("GET", "/v1/admin/dci/senders"), ("POST", "/v1/admin/dci/senders"), ("GET", "/v1/admin/dci/senders/{sender_id}"),
        ("PATCH", "/v1/admin/dci/senders/{sender_id}"), ("GET", "/v1/admin/dci/deliveries"),
        ("POST", "/v1/admin/dci/deliveries/{delivery_id}/redrive"), ("GET", "/v1/admin/dci/subscriptions"))},
    # admin only; a shown message is in its ledger form (masked numbers, birth year), see shared/dead_letters.py
    **{(service, method, path): "dead letters (admin only)" for service in ("benefits", "audit")
       for method, path in (("GET", "/v1/admin/dead-letters"), ("GET", "/v1/admin/dead-letters/{dead_letter_id}"),
                            ("POST", "/v1/admin/dead-letters/{dead_letter_id}:redrive"))},
}


# ---------------------------------------------------------------------------- the attacker

def _dates_of_year(year: int) -> Iterable[dt.date]:
    day = max(dt.date(year, 1, 1), EARLIEST)
    while day.year == year and day <= LATEST:
        yield day
        day += dt.timedelta(days=1)


def _as_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        match = ISO_DATE.match(value.strip())
        if match:
            try:
                return dt.date(*map(int, match.groups()))
            except ValueError:
                return None
        digits = value.strip()
        if len(digits) == 8 and digits.isdigit():
            try:
                return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
            except ValueError:
                return None
    return None


def _as_year(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 1800 <= value <= 2200:
        return value
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) == 4:
        return int(value.strip())
    return None


def birth_candidates(obj: dict) -> set[dt.date] | None:
    """Birth dates allowed by the birth-ish fields of one object; None = no constraint at all."""
    allowed: set[dt.date] | None = None

    def narrow(dates: set[dt.date]) -> None:
        nonlocal allowed
        allowed = dates if allowed is None else allowed & dates

    for key, value in obj.items():
        name = str(key).strip().lower()
        if name in BIRTH_DATE_FIELDS:
            exact = _as_date(value)
            year = _as_year(value)
            if exact is not None:
                narrow({exact})
            elif year is not None:
                narrow(set(_dates_of_year(year)))
        elif name in BIRTH_YEAR_FIELDS and _as_year(value) is not None:
            narrow(set(_dates_of_year(_as_year(value))))
        elif name in AGE_FIELDS and isinstance(value, int) and not isinstance(value, bool):
            # Age on an unknown day of the last year or two: born within three calendar years.
            years = {LATEST.year - value - 2, LATEST.year - value - 1, LATEST.year - value}
            narrow({d for y in years for d in _dates_of_year(y)})
    return allowed


def _all_birth_dates() -> list[dt.date]:
    return [EARLIEST + dt.timedelta(days=i) for i in range((LATEST - EARLIEST).days + 1)]


ALL_DATES = _all_birth_dates()


def count_candidates(region: str, tail: str, dates: Iterable[dt.date]) -> int:
    sequence, check = tail[:3], tail[3]
    return sum(1 for day in dates if check_digit(f"{region}{day:%Y%m%d}{sequence}") == check)


@dataclass
class Attack:
    clear_numbers: set[str]  # every number in the flow, to catch a clear one or an exact birth date
    shapes: set[str] = field(default_factory=set)  # object shapes that held a masked number
    tried: int = 0
    rebuilt: list[str] = field(default_factory=list)
    min_candidates: int | None = None

    def birth_of(self, masked_region: str, masked_tail: str) -> set[dt.date]:
        return {dt.date(int(n[6:10]), int(n[10:12]), int(n[12:14])) for n in self.clear_numbers
                if n[:6] == masked_region and n[14:] == masked_tail}

    def object(self, shape: str, obj: dict) -> None:
        """Try every number in one object (a JSON object or an export row)."""
        flat = {k: v for k, v in obj.items() if not isinstance(v, (dict, list))}
        texts = [v for v in flat.values() if isinstance(v, str)]
        for text in texts:
            for number in CLEAR.findall(text):
                if number in self.clear_numbers:
                    self.rebuilt.append(f"{shape}: clear number in a field")
        masks = {(m.group(1), m.group(2)) for text in texts for m in MASKED.finditer(text)}
        if not masks:
            return
        self.shapes.add(re.sub(r"\.[^.\[\]]*\d[^.\[\]]*", ".*", shape))  # ids as keys are one shape
        allowed = birth_candidates(flat)
        dates = ALL_DATES if allowed is None else sorted(allowed)
        other_dates = {d for k, v in flat.items() if (d := _as_date(v)) is not None}
        for region, tail in masks:
            self.tried += 1
            candidates = count_candidates(region, tail, dates)
            self.min_candidates = candidates if self.min_candidates is None else min(self.min_candidates, candidates)
            true_births = self.birth_of(region, tail)
            if candidates <= 1:
                self.rebuilt.append(f"{shape}: {region}********{tail} has {candidates} candidate(s) in {flat}")
            elif true_births & other_dates:
                self.rebuilt.append(f"{shape}: {region}********{tail} has its exact birth date in {flat}")

    def walk(self, shape: str, value: Any) -> None:
        if isinstance(value, dict):
            self.object(shape, value)
            for key, item in value.items():
                if isinstance(item, (dict, list)):
                    self.walk(f"{shape}.{key}", item)
        elif isinstance(value, list):
            for item in value:
                self.walk(shape, item)


def attack_csv(attack: Attack, shape: str, text: str) -> int:
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    for row in rows:
        attack.object(shape, dict(row))
    return len(rows)


def attack_xlsx(attack: Attack, shape: str, content: bytes) -> int:
    workbook = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
    count = 0
    for sheet in workbook.worksheets:
        rows = sheet.iter_rows(values_only=True)
        header = [str(cell) if cell is not None else "" for cell in next(rows, [])]
        for row in rows:
            cells = {header[i]: (cell.isoformat() if isinstance(cell, (dt.date, dt.datetime)) else cell)
                     for i, cell in enumerate(row) if i < len(header)}
            attack.object(f"{shape}[{sheet.title}]", cells)
            count += 1
    return count


# ---------------------------------------------------------------------------- the flow

async def drain(app, table, after: int) -> tuple[list[tuple[str, Envelope]], int]:
    async with app.state.sessionmaker() as session:
        rows = (await session.execute(select(table).where(table.c.id > after).order_by(table.c.id))).all()
    return [(r.topic, Envelope.model_validate_json(r.payload)) for r in rows], (rows[-1].id if rows else after)


def operations(app, service: str) -> set[tuple[str, str, str]]:
    return {(service, method.upper(), path) for path, ops in app.openapi()["paths"].items()
            for method in ops if method in ("get", "post", "put", "patch", "delete")}


async def test_no_non_admin_output_lets_an_id_number_be_rebuilt(databases, tmp_path):
    common = dict(var_dir=tmp_path, kafka_bootstrap="127.0.0.1:1", log_json=False, run_consumer=False)
    benefits = create_benefits(BenefitsSettings(database_url=await databases.url("benefits"), evaluation_date=AS_OF,
                                                partner_rate_per_s=1000.0, partner_burst=1000, **common))
    registry = create_registry(RegistrySettings(database_url=await databases.url("registry"), dci_worker=False,
                                                **common), benefits_transport=httpx.ASGITransport(app=benefits))
    audit = create_audit(AuditSettings(database_url=await databases.url("audit"), evaluation_date=AS_OF, **common),
                         checkpoint_schedule=False)
    settings = RegistrySettings(**common)
    admin = mint_token(settings, "admin", subject="admin-1")
    office = mint_token(settings, "registry:read registry:write", subject="office-1", area="360703")
    walked: dict[tuple[str, str, str], int] = {}
    numbers: set[str] = set()

    async with running_app(registry, admin) as reg_admin, running_app(benefits, admin) as ben_admin, \
            running_app(audit, admin) as aud_admin, running_app(registry, office) as reg:

        def seen(service: str, response: httpx.Response, method: str, route: str, expect=(200, 201)) -> Any:
            assert response.status_code in expect, (method, route, response.status_code, response.text[:500])
            walked[(service, method, route)] = walked.get((service, method, route), 0) + 1
            return response

        attack = Attack(numbers)
        responses: list[tuple[str, Any]] = []

        def keep(service: str, method: str, route: str, response: httpx.Response, expect=(200, 201)) -> Any:
            seen(service, response, method, route, expect)
            body = response.json()
            responses.append((f"{service} {method} {route}", body))
            return body

        # --- registry: households, members, procedures, cadres, visits, imports (non-admin office)
        farmer = (await reg_admin.post("/v1/households", json=household_body(status="registered"))).json()
        elderly = (await reg_admin.post("/v1/households",
                                        json=household_body("nankang-dibao-elderly", status="registered"))).json()
        assert farmer.get("id") and elderly.get("id"), (farmer, elderly)
        candidate_body = household_body(identified_year=None)
        for index, member in enumerate(candidate_body["members"]):
            born = dt.date.fromisoformat(member["birth_date"])
            member["id_number"] = make_id_number("360782", born, 500 + index * 2 + (member["sex"] == "M"))
        candidate = keep("registry", "POST", "/v1/households", await reg.post("/v1/households", json=candidate_body))
        hid, cid = farmer["id"], candidate["id"]
        keep("registry", "GET", "/v1/households/{household_id}", await reg.get(f"/v1/households/{hid}"))
        current = (await reg.get(f"/v1/households/{hid}")).json()
        keep("registry", "PATCH", "/v1/households/{household_id}", await reg.patch(
            f"/v1/households/{hid}", json={"income": {"year": 2019, "per_capita_net": "4100.00"}},
            headers={"If-Match": str(current["version"])}))
        newborn = {"name": "钟小芳", "id_number": make_id_number("360782", dt.date(2020, 2, 2), 2), "sex": "F",
                   "birth_date": "2020-02-02", "relation": "child"}
        added = keep("registry", "POST", "/v1/households/{household_id}/members",
                     await reg.post(f"/v1/households/{hid}/members", json=newborn))
        baby = added["members"][-1]["id"]
        keep("registry", "PATCH", "/v1/households/{household_id}/members/{person_id}",
             await reg.patch(f"/v1/households/{hid}/members/{baby}", json={"health": "chronic"}))
        mover = farmer["members"][3]["id"]
        keep("registry", "POST", "/v1/households/{household_id}/members/{person_id}/move",
             await reg.post(f"/v1/households/{hid}/members/{mover}/move",
                            json={"to_household_id": elderly["id"], "relation": "other", "reason": "婚迁"}))
        keep("registry", "POST", "/v1/households/{household_id}/members/{person_id}/deceased",
             await reg.post(f"/v1/households/{hid}/members/{baby}/deceased", json={}))
        for action in ("apply", "village_review"):
            keep("registry", "POST", "/v1/households/{household_id}/transitions",
                 await reg.post(f"/v1/households/{cid}/transitions", json={"action": action}))
        keep("registry", "GET", "/v1/households/{household_id}/procedure",
             await reg.get(f"/v1/households/{cid}/procedure"))
        keep("registry", "POST", "/v1/cadres", await reg.post("/v1/cadres", json={
            "id": "cadre-zhong", "name": "钟干部", "unit": "南康区财政局", "role": "pairing_cadre",
            "phone": "13800000000", "area_code": "360703"}))
        keep("registry", "GET", "/v1/cadres", await reg.get("/v1/cadres"))
        keep("registry", "GET", "/v1/cadres/{cadre_id}", await reg.get("/v1/cadres/cadre-zhong"))
        keep("registry", "PATCH", "/v1/cadres/{cadre_id}",
             await reg.patch("/v1/cadres/cadre-zhong", json={"unit": "南康区农业农村局"}))
        keep("registry", "POST", "/v1/households/{household_id}/pairings",
             await reg.post(f"/v1/households/{hid}/pairings", json={"cadre_id": "cadre-zhong"}))
        keep("registry", "GET", "/v1/households/{household_id}/pairings", await reg.get(f"/v1/households/{hid}/pairings"))
        cadre_headers = {"Authorization": f"Bearer {mint_token(settings, 'visits:write registry:read', subject='cadre-zhong')}"}
        visited = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
        visit = {"household_id": hid, "visited_at": visited.isoformat(), "location": {"lat": 25.66, "lon": 114.76},
                 "notes": "家中无人外出"}
        keep("registry", "POST", "/v1/visits",
             await reg.post("/v1/visits", json={**visit, "client_visit_id": str(uuid.uuid4())}, headers=cadre_headers))
        keep("registry", "POST", "/v1/visits:batch", await reg.post(
            "/v1/visits:batch", json={"visits": [{**visit, "client_visit_id": str(uuid.uuid4())}]}, headers=cadre_headers),
            expect=(200, 201, 207))
        keep("registry", "GET", "/v1/households/{household_id}/visits",
             await reg.get(f"/v1/households/{hid}/visits", headers=cadre_headers))
        # the case file and the search: a non-admin's summaries and file hold masks and birth years only
        keep("registry", "GET", "/v1/households/{household_id}/file", await reg.get(f"/v1/households/{hid}/file"))
        head = next(m for m in (await reg_admin.get(f"/v1/households/{hid}")).json()["members"] if m["relation"] == "head")
        found = keep("registry", "POST", "/v1/households:search",
                     await reg.post("/v1/households:search", json={"id_number": head["id_number"]}))
        assert [item["id"] for item in found["items"]] == [hid]
        keep("registry", "POST", "/v1/households:search", await reg.post("/v1/households:search", json={
            "name": head["name"][:1], "village_code": current["village"]["code"]}))
        keep("registry", "GET", "/v1/areas", await reg.get("/v1/areas"))
        keep("registry", "GET", "/v1/areas/{code}", await reg.get("/v1/areas/360703"), expect=(200, 404))
        # an import that names a number already living elsewhere: its report quotes the masked number
        export_admin = await reg_admin.get("/v1/exports/households", params={"format": "csv"})
        lines = export_admin.text.lstrip("\ufeff").splitlines()
        header, first_row = lines[0], next(line for line in lines[1:] if cid in line)
        clash = f"{header}\n{first_row.replace(cid, '')}\n".encode("utf-8-sig")
        imported = await reg.post("/v1/imports", files={"file": ("clash.csv", clash, "text/csv")})
        walked[("registry", "POST", "/v1/imports")] = 1
        responses.append(("registry POST /v1/imports", imported.json()))
        queued = seen("registry", await reg.post("/v1/imports", files={"file": ("clash.csv", clash, "text/csv")},
                                                 headers={"Prefer": "respond-async"}), "POST", "/v1/imports",
                      expect=(202,)).json()
        deadline = time.monotonic() + 60  # a loaded CI machine runs the import job slowly
        while True:
            job = keep("registry", "GET", "/v1/imports/{import_id}", await reg.get(f"/v1/imports/{queued['import_id']}"))
            if job["state"] not in ("queued", "running") or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert job["state"] == "refused", job
        assert "********" in json.dumps(job, ensure_ascii=False)  # the report names the masked number

        # --- monitoring (防止返贫): leads, a case, its steps, measures and plan, as the non-admin office
        def lead(household_id: str, **extra) -> dict:
            return {"client_lead_id": str(uuid.uuid4()), "household_id": household_id, "channel": "self_report",
                    "risk_causes": ["illness"], "reported_at": "2020-06-01T09:00:00+08:00", "notes": "住院", **extra}

        first_lead = keep("registry", "POST", "/v1/monitoring/leads", await reg.post("/v1/monitoring/leads",
                                                                                    json=lead(hid)))
        lead_id = first_lead.get("lead", first_lead).get("id") or first_lead["id"]
        batch = keep("registry", "POST", "/v1/monitoring/leads:batch", await reg.post(
            "/v1/monitoring/leads:batch", json={"leads": [lead(elderly["id"], channel="cadre_visit")]}),
            expect=(200, 201, 207))
        other_lead = json.dumps(batch, ensure_ascii=False).split('"id": "ml-')[1].split('"')[0]
        keep("registry", "POST", "/v1/monitoring/leads:import", await reg.post("/v1/monitoring/leads:import", json={
            "leads": [{"household_id": cid, "risk_causes": ["disaster"], "reported_at": "2020-06-02",
                       "department": "区应急管理局"}]}))
        keep("registry", "GET", "/v1/monitoring/leads", await reg.get("/v1/monitoring/leads"))
        keep("registry", "GET", "/v1/monitoring/leads/{lead_id}", await reg.get(f"/v1/monitoring/leads/{lead_id}"))
        keep("registry", "POST", "/v1/monitoring/leads/{lead_id}/dismiss",
             await reg.post(f"/v1/monitoring/leads/ml-{other_lead}/dismiss", json={"reason": "已核实无风险"}))
        case = keep("registry", "POST", "/v1/monitoring/objects", await reg.post("/v1/monitoring/objects", json={
            "lead_id": lead_id, "category": "sudden_hardship"}))
        object_id = case.get("object", case).get("id") or case["id"]
        keep("registry", "POST", "/v1/monitoring/objects/{object_id}/transitions", await reg.post(
            f"/v1/monitoring/objects/{object_id}/transitions",
            json={"action": "risk_warning", "evidence": {"source": "农户自主申报"}}))
        measured = keep("registry", "POST", "/v1/monitoring/objects/{object_id}/measures", await reg.post(
            f"/v1/monitoring/objects/{object_id}/measures", json={
                "type": "medical", "risk_cause": "illness", "responsible": "区医保局", "start_date": "2020-06-05",
                "status": "planned"}))
        measure_id = (measured.get("measure") or measured["object"]["measures"][-1])["id"]
        keep("registry", "PATCH", "/v1/monitoring/objects/{object_id}/measures/{measure_id}", await reg.patch(
            f"/v1/monitoring/objects/{object_id}/measures/{measure_id}", json={"status": "in_progress"},
            headers={"Content-Type": "application/merge-patch+json"}))
        keep("registry", "GET", "/v1/monitoring/objects", await reg.get("/v1/monitoring/objects"))
        keep("registry", "GET", "/v1/monitoring/objects/{object_id}", await reg.get(f"/v1/monitoring/objects/{object_id}"))
        keep("registry", "GET", "/v1/monitoring/objects/{object_id}/plan",
             await reg.get(f"/v1/monitoring/objects/{object_id}/plan"))

        # --- DCI Social Registry API: a partner of 南康区 searches, asks for status, subscribes (docs/dci.md);
        # the worker's callbacks and a notification are walked too
        partner = mint_token(settings, "dci", subject="jzc_mca", area="360703")
        await reg_admin.post("/v1/admin/dci/senders", json={"sender_id": "mca.example.cn", "client_id": "jzc_mca",
                                                            "name": "民政", "callback_uri": "https://mca.example.cn"})
        head_number = next(m["id_number"] for m in (await reg_admin.get(f"/v1/households/{hid}")).json()["members"]
                           if m["relation"] == "head")

        def dci_header(action: str, total: int = 1) -> dict:
            return {"message_id": uuid.uuid4().hex, "message_ts": dt.datetime.now(dt.timezone.utc).isoformat(),
                    "action": action, "sender_id": "mca.example.cn", "total_count": total}
        searches = [{"reference_id": f"r{index}", "search_criteria": {"query_type": query_type, "query": query,
                                                                       "response_entity": entity}}
                    for index, (query_type, query, entity) in enumerate([
                        ("idtype-value", {"type": "NID", "value": head_number}, "Household"),
                        ("idtype-value", {"type": "NID", "value": head_number}, "Member"),
                        ("expression", {"value": {"expression": {"collection": "Member",
                                                                 "query": {"birth_year": {"$gte": 1900}}}}}, "Member"),
                        ("predicate", [{"seq_num": 1, "expression1": {"attribute_name": "region_code",
                                                                       "operator": "eq", "attribute_value": "360703"}}],
                         "Household")])]
        dci_headers = {"Authorization": f"Bearer {partner}"}
        search_message = {"transaction_id": "t-dci-1", "search_request": searches}
        keep("registry", "POST", "/registry/sync/search", await reg.post("/registry/sync/search", headers=dci_headers, json={
            "header": dci_header("search", len(searches)), "message": search_message}))
        keep("registry", "POST", "/registry/search", await reg.post("/registry/search", headers=dci_headers, json={
            "header": dci_header("search", len(searches)), "message": {**search_message, "transaction_id": "t-dci-2"}}))
        status = {"transaction_id": "t-dci-3", "txnstatus_request": {"reference_id": "s1", "txn_type": "search",
                                                                      "attribute_type": "transaction_id",
                                                                      "attribute_value": "t-dci-1"}}
        for path in ("/registry/sync/txn/status", "/registry/txn/status"):
            keep("registry", "POST", path, await reg.post(path, headers=dci_headers, json={
                "header": dci_header("txn-status"), "message": {**status, "transaction_id": uuid.uuid4().hex}}))
        subscribe = {"transaction_id": "t-dci-4", "subscribe_request": [{"reference_id": "s1", "subscribe_criteria": {
            "reg_event_type": "UPDATE", "filter_type": "idtype-value", "response_entity": "Member",
            "filter": {"type": "HOUSEHOLD_ID", "value": hid}}}]}
        keep("registry", "POST", "/registry/subscribe", await reg.post("/registry/subscribe", headers=dci_headers, json={
            "header": dci_header("subscribe"), "message": subscribe}))
        callbacks: list[dict] = []
        worker = DciWorker(registry.state.sessionmaker, registry.state.settings, registry.state.dci_signer,
                           transport=httpx.MockTransport(lambda r: callbacks.append(json.loads(r.content))
                                                         or httpx.Response(200, json={})))
        while await worker.deliver_due():
            pass
        current = (await reg_admin.get(f"/v1/households/{hid}")).json()
        async with registry.state.sessionmaker() as session:
            assert await stage_notifications(session, "household.updated", hid, current["version"], event_id="e-1",
                                             event_time=dt.datetime.now(dt.timezone.utc),
                                             registry_id="registry.jingzhun.local") == 1
            await session.commit()
        while await worker.deliver_due():
            pass
        await worker.close()
        assert {c["header"]["action"] for c in callbacks} == {"on-search", "txn-on-status", "on-subscribe", "notify"}
        for callback in callbacks:
            responses.append((f"registry DCI callback {callback['header']['action']}", callback))
        keep("registry", "GET", "/registry/.well-known/dci-keys", await reg.get("/registry/.well-known/dci-keys"))

        # --- registry events → benefits and audit
        async def deliver(after_registry: int, after_benefits: int) -> tuple[int, int]:
            events, after_registry = await drain(registry, registry_outbox, after_registry)
            for topic, envelope in events:
                async with transaction(benefits.state.sessionmaker) as session:
                    await apply_registry_event(session, envelope, AS_OF)
                async with transaction(audit.state.sessionmaker) as session:
                    await ingest(session, envelope, f"{topic}:0", audit.state.settings)
            decisions, after_benefits = await drain(benefits, benefits_outbox, after_benefits)
            for topic, envelope in decisions:
                async with transaction(audit.state.sessionmaker) as session:
                    await ingest(session, envelope, f"{topic}:0", audit.state.settings)
            return after_registry, after_benefits

        marks = await deliver(0, 0)

        # every clear number of the flow, from the registry's admin view (the attacker's target)
        for household_id in (hid, elderly["id"], cid):
            snapshot = (await reg_admin.get(f"/v1/households/{household_id}")).json()
            numbers |= {m["id_number"] for m in snapshot["members"] if m.get("id_number")}
        numbers.add(newborn["id_number"])
        assert len(numbers) >= 10

        # --- registry lists and exports, non-admin
        keep("registry", "GET", "/v1/households", await reg.get("/v1/households"))
        for fmt in ("csv", "xlsx"):
            response = seen("registry", await reg.get("/v1/exports/households", params={"format": fmt}),
                            "GET", "/v1/exports/households")
            rows = (attack_csv(attack, "registry export csv", response.text) if fmt == "csv"
                    else attack_xlsx(attack, "registry export xlsx", response.content))
            assert rows >= 8, fmt

        # --- benefits: staff views and partners
        staff = mint_token(settings, "benefits:read benefits:evaluate", subject="office-2", area="360703")
        async with running_app(benefits, staff) as ben:
            keep("benefits", "GET", "/v1/households/{household_id}/entitlements",
                 await ben.get(f"/v1/households/{hid}/entitlements"))
            keep("benefits", "GET", "/v1/households/{household_id}/entitlements/history",
                 await ben.get(f"/v1/households/{hid}/entitlements/history"))
            keep("benefits", "GET", "/v1/households/{household_id}/monitoring/elimination",
                 await ben.get(f"/v1/households/{hid}/monitoring/elimination"))
            keep("benefits", "GET", "/v1/entitlements", await ben.get("/v1/entitlements"))
            what_if = household_body(status="registered")
            keep("benefits", "POST", "/v1/evaluate", await ben.post("/v1/evaluate", json={
                "household": {**what_if, "id": "what-if", "version": 1}, "as_of": AS_OF.isoformat()}))
            keep("benefits", "POST", "/v1/simulate", await ben.post("/v1/simulate", json={}), expect=(200, 201, 202, 403, 422))
            keep("benefits", "GET", "/v1/villages/assessments", await ben.get("/v1/villages/assessments",
                                                                              params={"area": "360703"}))
            codes = {item.get("village_code") for item in
                     (await ben.get("/v1/villages/assessments", params={"area": "360703"})).json().get("items", [])}
            for code in sorted(c for c in codes if c)[:3]:
                keep("benefits", "GET", "/v1/villages/{code}/assessments", await ben.get(f"/v1/villages/{code}/assessments"))
            job = await ben_admin.post("/v1/recompute", json={})
            if job.status_code in (200, 201, 202) and job.json().get("job_id"):
                keep("benefits", "GET", "/v1/jobs/{job_id}", await ben.get(f"/v1/jobs/{job.json()['job_id']}"),
                     expect=(200, 403))
            else:
                walked[("benefits", "GET", "/v1/jobs/{job_id}")] = 0

        bank = (await ben_admin.post("/v1/partners/clients", json={"name": "Nankang RCB", "scopes": ["credit"]})).json()
        insurer = (await ben_admin.post("/v1/partners/clients",
                                        json={"name": "PICC Ganzhou", "scopes": ["settlement"]})).json()

        async def partner_token(client: dict) -> str:
            form = {"grant_type": "client_credentials", "client_id": client["client_id"],
                    "client_secret": client["client_secret"]}
            response = await ben_admin.post("/oauth/token", data=form)
            assert response.status_code == 200, response.text
            return response.json()["access_token"]

        farmer_number = next(m["id_number"] for m in (await reg_admin.get(f"/v1/households/{hid}")).json()["members"]
                             if m["relation"] == "head")
        async with running_app(benefits, await partner_token(bank)) as bank_api, \
                running_app(benefits, await partner_token(insurer)) as insurer_api:
            keep("benefits", "GET", "/v1/partners/whoami", await bank_api.get("/v1/partners/whoami"))
            keep("benefits", "POST", "/v1/credit/eligibility", await bank_api.post("/v1/credit/eligibility", json={
                "id_number": farmer_number, "amount": "50000.00", "term_months": 36, "purpose": "livestock"}))
            keep("benefits", "POST", "/v1/credit/loans", await bank_api.post("/v1/credit/loans", json={
                "report_id": "r-L-1", "loan_id": "L-1", "event": "issuance", "date": "2019-11-15",
                "id_number": farmer_number, "amount": "36000", "due_date": "2021-11-15", "purpose": "livestock"}))
            keep("benefits", "POST", "/v1/credit/interest-claims", await bank_api.post("/v1/credit/interest-claims", json={
                "claim_id": "C-2019Q4", "year": 2019, "quarter": 4,
                "lines": [{"loan_id": "L-1", "claimed_amount": "200.00"}]}))
            keep("benefits", "GET", "/v1/credit/interest-claims/totals",
                 await bank_api.get("/v1/credit/interest-claims/totals", params={"year": 2019}), expect=(200, 403))
            bill = {"admission_date": "2020-05-01", "discharge_date": "2020-05-10", "hospital_level": 2,
                    "in_district": True, "total_cost": "20000.00", "in_policy_cost": "18000.00"}
            keep("benefits", "POST", "/v1/settlements/one-stop", await insurer_api.post(
                "/v1/settlements/one-stop", json={"id_number": farmer_number, **bill, "claim_id": "INS-1"}))
            keep("benefits", "GET", "/v1/settlements/roster", await insurer_api.get("/v1/settlements/roster"))
            keep("benefits", "POST", "/v1/settlements/coverage:lookup", await insurer_api.post(
                "/v1/settlements/coverage:lookup", json={"id_numbers": sorted(numbers)[:5]}))
            keep("benefits", "GET", "/v1/settlements", await insurer_api.get("/v1/settlements"))

        marks = await deliver(*marks)

        # --- audit views, non-admin auditor
        auditor = mint_token(settings, "audit:read", subject="auditor-1")
        async with running_app(audit, auditor) as aud:
            records, cursor = [], None
            while True:
                page = keep("audit", "GET", "/v1/audit/records",
                            await aud.get("/v1/audit/records", params={"limit": 1000, **({"cursor": cursor} if cursor else {})}))
                records += page["items"]
                cursor = page.get("next_cursor")
                if not cursor or not page["items"]:
                    break
            keep("audit", "GET", "/v1/audit/verify", await aud.get("/v1/audit/verify"))
            await aud_admin.post("/v1/audit/checkpoints")
            keep("audit", "GET", "/v1/audit/checkpoints", await aud.get("/v1/audit/checkpoints"))
            keep("audit", "GET", "/v1/audit/households/{household_id}/history",
                 await aud.get(f"/v1/audit/households/{hid}/history"))
            keep("audit", "GET", "/v1/audit/stats/entitlements", await aud.get("/v1/audit/stats/entitlements"))
            keep("audit", "GET", "/v1/supervision/anomalies",
                 await aud.get("/v1/supervision/anomalies", params={"as_of": AS_OF.isoformat()}))
            keep("audit", "GET", "/v1/supervision/sample", await aud.get("/v1/supervision/sample", params={"year": 2020}))
            for fmt in ("csv", "xlsx"):
                response = await aud.get("/v1/supervision/sample", params={"year": 2020, "format": fmt})
                if response.status_code == 200 and fmt == "csv":
                    attack_csv(attack, "audit sample csv", response.text)
                elif response.status_code == 200:
                    attack_xlsx(attack, "audit sample xlsx", response.content)
            keep("audit", "GET", "/v1/supervision/progress", await aud.get("/v1/supervision/progress"))
            keep("audit", "GET", "/v1/supervision/monitoring", await aud.get("/v1/supervision/monitoring",
                                                                             params={"as_of": AS_OF.isoformat()}))
            keep("audit", "GET", "/v1/supervision/partner-access", await aud.get("/v1/supervision/partner-access"))
            dashboard = await aud.get("/dashboard")
            walked[("audit", "GET", "/dashboard")] = 1
            assert not CLEAR.search(dashboard.text)

    # --- every operation walked or named
    every = operations(registry, "registry") | operations(benefits, "benefits") | operations(audit, "audit")
    unclassified = sorted(every - set(walked) - set(NO_PERSONS))
    assert not unclassified, f"operations neither walked nor named as person-free: {unclassified}"

    # --- every ledger record type of the flow
    record_types = {r["type"] for r in records}
    expected = {"household.registered", "household.updated", "household.procedure_step", "person.moved",
                "pairing.started", "visit.recorded", "cadre.registered", "cadre.updated", "partner.access"}
    assert expected <= record_types, sorted(expected - record_types)
    assert "entitlements.decided" in record_types, sorted(record_types)
    for record in records:
        attack.walk(f"audit record {record['type']}", record)

    for shape, body in responses:
        attack.walk(shape, body)

    # --- the events the registry published carry no clear number (the ledger is built from them)
    async with registry.state.sessionmaker() as session:
        payloads = (await session.execute(select(registry_outbox.c.payload))).scalars().all()
    assert payloads
    leaked = [(json.loads(payload)["type"], payload[max(0, payload.find(number) - 200):payload.find(number) + 30])
              for payload in payloads for number in CLEAR.findall(payload) if number in numbers]
    assert not leaked, f"{len(leaked)} clear numbers in registry events: {leaked[:3]}"
    hashed = [m for payload in payloads for m in (json.loads(payload)["data"].get("household") or {}).get("members", [])
              if m.get("id_number")]
    assert hashed and all(len(m.get("id_number_hash", "")) == 64 and "*" in m["id_number"] for m in hashed)
    assert all(m.get("birth_date") for m in hashed if m.get("id_number"))  # benefits' age rules keep working

    print(f"\nrebuild: {len(attack.shapes)} shapes, {attack.tried} numbers tried, {len(attack.rebuilt)} rebuilt, "
          f"min candidates {attack.min_candidates} ({databases.backend}; {len(walked)} operations walked, "
          f"{len(NO_PERSONS)} named person-free, record types {sorted(record_types)})")
    assert attack.tried > 50
    assert not attack.rebuilt, "\n".join(attack.rebuilt[:20])
    assert attack.min_candidates is not None and attack.min_candidates > 1


def test_the_attacker_does_rebuild_a_mask_beside_its_birth_date():
    """The check of the test itself: the old output shape (mask + birth_date) is caught."""
    number = make_id_number("360782", dt.date(1978, 3, 15), 1)
    attack = Attack({number})
    attack.walk("old member", {"id_number": f"{number[:6]}********{number[14:]}", "birth_date": "1978-03-15"})
    assert attack.rebuilt and attack.tried == 1
    year_only = Attack({number})
    year_only.walk("new member", {"id_number": f"{number[:6]}********{number[14:]}", "birth_year": 1978})
    assert not year_only.rebuilt and year_only.min_candidates > 1
    elsewhere = Attack({number})
    elsewhere.walk("renamed", {"id_number": f"{number[:6]}********{number[14:]}", "admitted_on": "1978-03-15"})
    assert elsewhere.rebuilt
    clear = Attack({number})
    clear.walk("clear", {"note": f"number {number}"})
    assert clear.rebuilt
