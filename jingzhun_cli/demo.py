"""The demo district: five villages of Nankang, 200 households, their cadres, visits and exits.

Everything goes through the registry's own code (area bulk load, cadre and pairing service,
visit recording, the transition workflow, admin creates "in any status, recorded as such"), so
every fact is an event the other services consume, and every date is a business date in
2016-2020: pairings, visits and procedure steps carry the day they happened, not the day the
demo was loaded. The district is built so that the supervision rules find something real at the
demo's evaluation date (2020-06-30): ``DEMO_ANOMALIES`` names, per rule, the household that shows
it and the near miss (just inside the rule's threshold) that must not be flagged.

Household ids hh-demo-0001 … hh-demo-0200 and every member's ID number are stable (README and
partner examples use them); hh-demo-0001 and hh-demo-0002 are exactly as before and get no
scripted history (the README pairs and visits hh-demo-0001 itself).
"""
from __future__ import annotations

import copy
import csv
import io
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select

from services.registry.cadres.service import CadreIn, create_cadre, pair, unpair
from services.registry.households.members import mark_deceased, move_member
from services.registry.households.service import create_household, load_household
from services.registry.tables import cadres, households
from services.registry.villages.service import load_areas
from services.registry.visits.service import parse_visit, record_batch, record_visit
from services.registry.workflows.service import TransitionRequest, transition
from shared.auth import Principal
from shared.db import transaction
from shared.idcard import make_id_number
from shared.problems import Problem

EXAMPLES = Path(__file__).resolve().parent / "examples"
CHINA = timezone(timedelta(hours=8))
#: The day the demo is judged on (the launcher's JZ_BENEFITS_/JZ_AUDIT_EVALUATION_DATE).
EVALUATION_DATE = date(2020, 6, 30)
DEMO_SEED = 20200630
VISIT_NAMESPACE = uuid.UUID("6a1f3c2e-9d1b-4f4e-8a53-0d6c2b7e9f10")

VILLAGES = [
    {"code": "360703105201", "name": "新村村", "township_code": "360703105", "township_name": "隆木乡",
     "is_poor_village": True, "is_deep_poverty_village": True},
    {"code": "360703105202", "name": "隆木村", "township_code": "360703105", "township_name": "隆木乡",
     "is_poor_village": True, "is_deep_poverty_village": False},
    {"code": "360703102203", "name": "示例村", "township_code": "360703102", "township_name": "示例镇",
     "is_poor_village": False, "is_deep_poverty_village": False},
    {"code": "360703102204", "name": "坪市村", "township_code": "360703102", "township_name": "示例镇",
     "is_poor_village": True, "is_deep_poverty_village": False},
    {"code": "360703110205", "name": "黄坑村", "township_code": "360703110", "township_name": "麻双乡",
     "is_poor_village": False, "is_deep_poverty_village": False},
]

# Areas as the office's bulk load takes them (code, name, flags, population, incidence in %):
# parents first, as a real area file is laid out. Populations are registered (户籍) residents.
AREAS = [
    {"code": "36", "name": "江西省", "population": 45188635},
    {"code": "3607", "name": "赣州市", "population": 9897000, "is_poor": True},
    {"code": "360703", "name": "南康区", "population": 861000, "is_poor": True, "exit_year": 2018,
     "poverty_incidence_pct": "0.93"},
    {"code": "360703102", "name": "示例镇", "population": 41200, "poverty_incidence_pct": "1.61"},
    {"code": "360703105", "name": "隆木乡", "population": 28600, "poverty_incidence_pct": "3.12"},
    {"code": "360703110", "name": "麻双乡", "population": 23400, "poverty_incidence_pct": "1.05"},
    {"code": "360703102203", "name": "示例村", "population": 3120, "poverty_incidence_pct": "1.22"},
    {"code": "360703102204", "name": "坪市村", "population": 2650, "is_poor": True, "exit_year": 2018,
     "poverty_incidence_pct": "2.45"},
    {"code": "360703105201", "name": "新村村", "population": 1980, "is_poor": True, "is_deep_poverty": True,
     "poverty_incidence_pct": "4.80"},
    {"code": "360703105202", "name": "隆木村", "population": 2310, "is_poor": True, "exit_year": 2019,
     "poverty_incidence_pct": "2.86"},
    {"code": "360703110205", "name": "黄坑村", "population": 2870, "poverty_incidence_pct": "0.87"},
]
AREA_COLUMNS = ("code", "name", "is_poor", "is_deep_poverty", "exit_year", "population", "poverty_incidence_pct")

# One pairing cadre per village, plus the one who takes over a household when its cadre is transferred.
CADRES = [
    {"id": "cadre-demo-01", "name": "钟建国", "unit": "南康区农业农村局", "area_code": "360703105201"},
    {"id": "cadre-demo-02", "name": "刘文华", "unit": "南康区财政局", "area_code": "360703105202"},
    {"id": "cadre-demo-03", "name": "黄志强", "unit": "南康区教育局", "area_code": "360703102203"},
    {"id": "cadre-demo-04", "name": "陈丽萍", "unit": "南康区卫生健康委", "area_code": "360703102204"},
    {"id": "cadre-demo-05", "name": "赖国平", "unit": "南康区住房和城乡建设局", "area_code": "360703110205"},
    {"id": "cadre-demo-06", "name": "谢晓东", "unit": "南康区人力资源和社会保障局", "area_code": "360703105201"},
]
VILLAGE_CADRE = {c["area_code"]: c["id"] for c in CADRES[:5]}
RELIEF_CADRE = "cadre-demo-06"

PAIRED_SINCE = date(2016, 3, 1)  # the pairing campaign (结对帮扶全覆盖) of spring 2016
# Exits of households brought in as exited/monitored, spread over the five exit campaigns.
EXIT_DATES = ("2016-11-28", "2017-12-05", "2018-11-30", "2019-12-20", "2020-05-29")

# Per rule: the household that shows it and its near miss (inside the threshold, must not be
# flagged), at EVALUATION_DATE with the default thresholds. ``None``: the registry or benefits
# prevents the anomaly itself, so no real event stream can show it (see docs/audit.md).
DEMO_ANOMALIES: dict[str, dict[str, Any]] = {
    "exit_overridden": {
        "finding": "hh-demo-0181", "near_miss": "hh-demo-0182",
        "why": "0181 exited on 2019-11-28 by override (income 2800.00 under the 2019 line 3218, D-grade house); "
               "0182 exited the same day without override, income 3218.01 just above the line"},
    "relocated_exit_not_moved_in": {
        "finding": "hh-demo-0183", "near_miss": "hh-demo-0184",
        "why": "0183 was brought in as exited (2018-12-10) while relocated and not moved in; 0184 moved in on "
               "2019-11-12, six days before its exit was proposed"},
    "no_recent_visit": {
        "finding": "hh-demo-0185", "near_miss": "hh-demo-0186",
        "also": {"finding": "hh-demo-0187", "near_miss": "hh-demo-0188"},
        "why": "0185 last visited 2020-03-31 (91 days), 0186 on 2020-04-01 (90 days, not more than 90); "
               "0187 never visited, identified in 2015; 0188 never visited but registered on 2020-04-01"},
    "above_line_not_exited": {
        "finding": "hh-demo-0189", "near_miss": "hh-demo-0190",
        "why": "0189: 3600.00 in 2018 (line 2995) and 4300.00 in 2019 (line 3218), still registered; "
               "0190: exactly 2995.00 in 2018 (not above the line), 4300.00 in 2019"},
    "cadre_unpaired_before_exit": {
        "finding": "hh-demo-0191", "near_miss": "hh-demo-0192",
        "why": "0191's cadre was unpaired on 2018-09-15 while the household had not exited (handed over to "
               "cadre-demo-06); 0192's cadre was unpaired on its exit date 2018-12-10"},
    "entitlement_to_ineligible_person": {
        "finding": None, "near_miss": "hh-demo-0193", "also": {"near_miss": "hh-demo-0194"},
        "why": "0193's disabled head died (recorded 2020-02): benefits revoked his entitlements; 0194 was removed "
               "(剔除) in 2018: benefits revoked everything. Benefits revokes on the same event, so no true "
               "finding arises from the registry's events"},
    "duplicate_id_number": {
        "finding": None, "near_miss": "hh-demo-0195",
        "why": "a member of 0195 moved to hh-demo-0196 in 2019: her ID number is in both households' "
               "history but living in one. The registry refuses a living person in two households"},
    "partner_lookup_without_benefit": {
        "finding": None, "near_miss": None,
        "why": "made by banks at request time, not by the demo load: see docs/audit.md"},
    # The monitoring cases of jingzhun_cli/demo_monitoring.py
    "monitoring_lead_not_verified": {
        "finding": "hh-demo-0008", "near_miss": "hh-demo-0035",
        "why": "the department's lead ml-demo-0008 reported 2020-06-10 is still open on 2020-06-30 (20 days, more "
               "than 15); 0035's self-report was verified two days after it came in (case mo-demo-0035)"},
    "monitoring_object_without_measures": {
        "finding": None, "near_miss": "hh-demo-0014",
        "why": "0014's case is monitored with two measures; 0035's case is still identifying (no measure due yet)"},
    "monitoring_eliminated_too_soon": {
        "finding": None, "near_miss": "hh-demo-0010",
        "why": "0010's risk was eliminated on benefits' answer of seven months above the range (six needed)"},
    "monitoring_eliminated_inside_range": {
        "finding": "hh-demo-0010", "near_miss": "hh-demo-0014",
        "why": "0010 is marked eliminated, but the registry's own income record for it (4,262.00 per person for "
               "2019) is inside the range of 6,000: the elimination evidence is not backed by the household's "
               "record, which is what this rule is for; 0014 is monitored, not eliminated"},
}


def _templates() -> list[dict]:
    return [json.loads(p.read_text())["household"] for p in sorted(EXAMPLES.glob("*.json"))]


def demo_households(count: int = 200, seed: int = DEMO_SEED) -> list[tuple[str, dict]]:
    """Deterministic (id, body) pairs: same seed, same district, so loading is idempotent."""
    rng = random.Random(seed)
    templates = _templates()
    households = []
    for index in range(count):
        body = copy.deepcopy(templates[index % len(templates)])
        body.pop("id", None)
        body.pop("version", None)
        body["village"] = dict(VILLAGES[index % len(VILLAGES)])
        body["status"] = rng.choice(["registered"] * 6 + ["candidate", "exited", "monitored"])
        if body["status"] == "exited":
            body["exit_date"] = "2019-12-20"
        body["income"] = {"year": 2019, "per_capita_net": f"{rng.randint(1800, 6500)}.00"}
        body["production"]["crops_mu"] = rng.randint(0, 8)
        body["production"]["pigs_sheep"] = rng.randint(0, 4)
        body["production"]["beef_cattle"] = rng.randint(0, 5)
        for member_index, member in enumerate(body["members"]):
            member.pop("id", None)
            # Shift birth dates so every demo person is distinct (the registry refuses a living
            # person in two households); the ID number is rebuilt to agree with them.
            born = date.fromisoformat(member["birth_date"]) + timedelta(days=index)
            member["birth_date"] = born.isoformat()
            seq = member_index * 2 + (1 if member["sex"] == "M" else 0)
            member["id_number"] = make_id_number("360782", born, seq)
        household_id = f"hh-demo-{index + 1:04d}"
        if index >= 2:  # hh-demo-0001/0002 stay exactly as the README shows them
            _spread_exit(body, index)
            _SCENARIO_BODIES.get(household_id, lambda b: None)(body)
        households.append((household_id, body))
    return households


def _spread_exit(body: dict, index: int) -> None:
    if body["status"] in ("exited", "monitored"):
        body["exit_date"] = EXIT_DATES[index % len(EXIT_DATES)]


# ---------------------------------------------------------------- scenario households


def _registered(income: tuple[int, str] | None = None, **changes):
    def apply(body: dict) -> None:
        body.update(status="registered", exit_date=None, **changes)
        if income:
            body["income"] = {"year": income[0], "per_capita_net": income[1]}
    return apply


def _relocated(moved_in: bool) -> dict:
    return {"relocation": {"relocated": True, "moved_in": moved_in, "site_type": "town"}}


_SCENARIO_BODIES = {
    "hh-demo-0181": _registered((2019, "2800.00")),
    "hh-demo-0182": _registered((2019, "3218.01")),
    "hh-demo-0183": lambda b: b.update(status="exited", exit_date="2018-12-10", **_relocated(False)),
    "hh-demo-0184": _registered((2019, "3900.00"), **_relocated(False)),
    "hh-demo-0185": _registered(),
    "hh-demo-0186": _registered(),
    "hh-demo-0187": _registered(identified_year=2015),
    "hh-demo-0188": lambda b: b.update(status="candidate", exit_date=None, identified_year=None),
    "hh-demo-0189": _registered((2018, "3600.00")),
    "hh-demo-0190": _registered((2018, "2995.00")),
    "hh-demo-0191": _registered(),
    "hh-demo-0192": lambda b: b.update(status="exited", exit_date="2018-12-10"),
    "hh-demo-0193": _registered(),
    "hh-demo-0194": _registered(),
    "hh-demo-0195": _registered(),
    "hh-demo-0196": _registered(),
}


@dataclass(frozen=True)
class Step:
    """One dated thing that happened to a household (China time)."""
    at: datetime
    kind: str  # pair | unpair | visit | transition | deceased | move
    cadre: str | None = None
    params: dict = field(default_factory=dict)


def china(day: str, hour: int = 10) -> datetime:
    return datetime.combine(date.fromisoformat(day), time(hour), CHINA)


def pairing_step(day: str, cadre: str) -> Step:
    return Step(china(day, 9), "pair", cadre)


def visit_step(day: str, cadre: str, **observations) -> Step:
    return Step(china(day), "visit", cadre, {"observations": observations} if observations else {})


def procedure_step(day: str, action: str, reason: str | None = None, override: bool = False) -> Step:
    return Step(china(day, 15), "transition", None, {"action": action, "reason": reason, "override": override})


def _scenario_scripts(cadre: dict[str, str]) -> dict[str, list[Step]]:
    """The scripted history of each scenario household (``cadre``: household id → its village cadre)."""
    c = cadre
    since = PAIRED_SINCE.isoformat()
    return {
        "hh-demo-0181": [pairing_step(since, c["hh-demo-0181"]), visit_step("2019-06-12", c["hh-demo-0181"]),
                         procedure_step("2019-11-20", "propose_exit", "乡镇党委会议研究认定已稳定脱贫", override=True),
                         procedure_step("2019-11-28", "approve_exit"), visit_step("2020-05-18", c["hh-demo-0181"])],
        "hh-demo-0182": [pairing_step(since, c["hh-demo-0182"]), visit_step("2019-10-08", c["hh-demo-0182"]),
                         procedure_step("2019-11-20", "propose_exit"), procedure_step("2019-11-28", "approve_exit"),
                         visit_step("2020-05-18", c["hh-demo-0182"])],
        "hh-demo-0183": [pairing_step(since, c["hh-demo-0183"]), visit_step("2017-05-09", c["hh-demo-0183"]),
                         visit_step("2019-04-16", c["hh-demo-0183"])],
        "hh-demo-0184": [pairing_step(since, c["hh-demo-0184"]),
                         visit_step("2019-11-12", c["hh-demo-0184"],
                                relocation={"relocated": True, "moved_in": True, "site_type": "town"}),
                         procedure_step("2019-11-18", "propose_exit"), procedure_step("2019-11-26", "approve_exit"),
                         visit_step("2020-06-02", c["hh-demo-0184"])],
        "hh-demo-0185": [pairing_step(since, c["hh-demo-0185"]), visit_step("2018-07-02", c["hh-demo-0185"]),
                         visit_step("2020-03-31", c["hh-demo-0185"])],
        "hh-demo-0186": [pairing_step(since, c["hh-demo-0186"]), visit_step("2019-09-15", c["hh-demo-0186"]),
                         visit_step("2020-04-01", c["hh-demo-0186"])],
        "hh-demo-0187": [pairing_step(since, c["hh-demo-0187"])],
        "hh-demo-0188": [procedure_step("2020-04-01", "register", "村民代表评议、乡镇审核、县级复核通过"),
                         pairing_step("2020-04-02", c["hh-demo-0188"])],
        "hh-demo-0189": [pairing_step(since, c["hh-demo-0189"]),
                         visit_step("2020-03-10", c["hh-demo-0189"], income={"year": 2019, "per_capita_net": "4300.00"}),
                         visit_step("2020-05-20", c["hh-demo-0189"])],
        "hh-demo-0190": [pairing_step(since, c["hh-demo-0190"]),
                         visit_step("2020-03-10", c["hh-demo-0190"], income={"year": 2019, "per_capita_net": "4300.00"}),
                         visit_step("2020-05-20", c["hh-demo-0190"])],
        "hh-demo-0191": [pairing_step(since, c["hh-demo-0191"]), visit_step("2017-04-11", c["hh-demo-0191"]),
                         visit_step("2018-05-20", c["hh-demo-0191"]), pairing_step("2018-09-01", RELIEF_CADRE),
                         Step(china("2018-09-15"), "unpair", c["hh-demo-0191"], {"reason": "工作调动 (transferred)"}),
                         visit_step("2019-10-10", RELIEF_CADRE), visit_step("2020-05-12", RELIEF_CADRE)],
        "hh-demo-0192": [pairing_step(since, c["hh-demo-0192"]), visit_step("2017-06-06", c["hh-demo-0192"]),
                         visit_step("2018-10-23", c["hh-demo-0192"]),
                         Step(china("2018-12-10", 16), "unpair", c["hh-demo-0192"],
                              {"reason": "已脱贫，帮扶期满 (exited)"})],
        "hh-demo-0193": [pairing_step(since, c["hh-demo-0193"]), visit_step("2019-03-01", c["hh-demo-0193"]),
                         Step(china("2020-02-14"), "deceased", None, {"member": 0, "on": "2020-02-14",
                                                                      "note": "病故，村委会证明"}),
                         visit_step("2020-05-10", c["hh-demo-0193"])],
        "hh-demo-0194": [pairing_step(since, c["hh-demo-0194"]), visit_step("2017-08-08", c["hh-demo-0194"]),
                         procedure_step("2018-06-20", "remove", "家庭成员有财政供养人员，不符合识别标准 (ineligible)")],
        "hh-demo-0195": [pairing_step(since, c["hh-demo-0195"]), visit_step("2018-11-02", c["hh-demo-0195"]),
                         Step(china("2019-04-08"), "move", None, {"member": 1, "to": "hh-demo-0196",
                                                                  "relation": "parent",
                                                                  "reason": "随子女共同生活 (moved in with her son)"}),
                         visit_step("2020-05-26", c["hh-demo-0195"])],
        "hh-demo-0196": [pairing_step(since, c["hh-demo-0196"]), visit_step("2020-05-26", c["hh-demo-0196"])],
    }


def routine_visits(household_id: str, status: str, seed: int = DEMO_SEED) -> list[date]:
    """Home visits of a household without a scripted history, 2016-2020. Most registered households
    were last visited in the spring of 2020; some not since 2019 and a few never (real districts have
    both), so no_recent_visit has findings beyond the scripted ones."""
    if status == "candidate":
        return []
    rng = random.Random(f"{seed}:{household_id}")
    roll = rng.random()
    if status == "registered" and roll < 0.04:
        return []
    days = sorted({date(2016, 4, 1) + timedelta(days=rng.randint(0, 1369)) for _ in range(rng.randint(1, 3))})
    if status != "registered" or roll < 0.9:
        days.append(date(2020, 4, 3) + timedelta(days=rng.randint(0, 84)))  # 2020-04-03 … 2020-06-26
    return days


# ---------------------------------------------------------------- loading


def areas_csv() -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(AREA_COLUMNS)
    for area in AREAS:
        writer.writerow(["true" if area.get(c) is True else area.get(c, "") for c in AREA_COLUMNS])
    return out.getvalue().encode()


def visit_id(household_id: str, at: datetime) -> str:
    return str(uuid.uuid5(VISIT_NAMESPACE, f"{household_id}@{at.isoformat()}"))


def visit_body(household_id: str, at: datetime, observations: dict | None = None) -> dict:
    body = {"client_visit_id": visit_id(household_id, at), "household_id": household_id,
            "visited_at": at.isoformat(), "notes": "入户走访：了解家庭收入、两不愁三保障情况 (routine visit)"}
    if observations:
        body["observations"] = observations
    return body


def in_process_benefits(settings):
    """The registry's benefits client answered by the benefits engine in-process (pure evaluation,
    no service needed), so demo exits are assessed exactly as the running system would."""
    from services.benefits.engine import evaluate
    from services.registry.benefits_client import BenefitsClient

    class InProcessBenefits(BenefitsClient):
        async def evaluate(self, household: dict, as_of: date) -> dict:
            return evaluate(household, as_of).to_json()

    return InProcessBenefits(settings)


@dataclass
class LoadReport:
    households_created: int = 0
    households_existing: int = 0
    areas: dict = field(default_factory=dict)
    cadres_created: int = 0
    pairings: int = 0
    unpairings: int = 0
    visits: int = 0
    transitions: int = 0
    other_steps: int = 0
    monitoring_cases: int = 0


async def load_demo_district(sessionmaker, settings, *, count: int = 200, benefits=None) -> LoadReport:
    """Load (idempotently) the areas, cadres and households, and for each household created now, its
    history: pairings, visits and procedure steps on their own dates."""
    office = Principal(subject="demo-data", scopes=frozenset({"admin"}))
    loader = _Loader(sessionmaker, settings, office, benefits or in_process_benefits(settings))
    report = loader.report

    async with transaction(sessionmaker) as session:
        report.areas = await load_areas(session, areas_csv(), "demo-areas.csv", office)
    async with transaction(sessionmaker) as session:
        known = set((await session.execute(select(cadres.c.id))).scalars())
        for cadre in CADRES:
            if cadre["id"] not in known:
                await create_cadre(session, CadreIn(role="pairing_cadre", **cadre), office)
                report.cadres_created += 1

    async with sessionmaker() as session:
        existing = set((await session.execute(select(households.c.id)
                                              .where(households.c.id.like("hh-demo-%")))).scalars())
    created: list[tuple[str, dict]] = []
    district = demo_households(count)
    for household_id, body in district:
        if household_id in existing:
            report.households_existing += 1
            continue
        async with transaction(sessionmaker) as session:
            created.append((household_id, await create_household(session, body, office, household_id=household_id)))
        report.households_created += 1
    # Histories are written for households created by this run only: a second run adds nothing.
    new_ids = {hid for hid, _ in created}
    village_cadre = {hid: VILLAGE_CADRE[body["village"]["code"]] for hid, body in district}
    scripts = {hid: steps for hid, steps in _scenario_scripts(village_cadre).items() if hid in new_ids}

    # Households without a script: paired in 2016 with their village's cadre, then visited.
    routine = [(hid, snap) for hid, snap in created
               if hid not in scripts and hid not in README_HOUSEHOLDS and snap["status"] != "candidate"]
    async with transaction(sessionmaker) as session:
        for hid, _ in routine:
            await pair(session, hid, village_cadre[hid], office, at=china(PAIRED_SINCE.isoformat(), 9))
            report.pairings += 1
    by_cadre: dict[str, list[dict]] = {}
    for hid, snap in routine:
        for day in routine_visits(hid, snap["status"]):
            by_cadre.setdefault(village_cadre[hid], []).append(visit_body(hid, china(day.isoformat())))
    for cadre_id, items in sorted(by_cadre.items()):
        for start in range(0, len(items), 500):
            results = await record_batch(sessionmaker, items[start:start + 500], _cadre(cadre_id), now=loader.now)
            failed = [r for r in results if r.get("status", 201) >= 400]
            if failed:
                raise RuntimeError(f"demo visits refused: {failed[:3]}")
            report.visits += len(results)

    # Scripted households: every step in date order, through the code an office or a phone uses.
    for hid in sorted(scripts):
        for step in sorted(scripts[hid], key=lambda s: s.at):
            await loader.run(hid, step)
    if count >= 35:  # monitoring cases of all three categories at different steps (demo_monitoring.py)
        from jingzhun_cli.demo_monitoring import load_demo_monitoring
        report.monitoring_cases = await load_demo_monitoring(sessionmaker, settings)
    return report


README_HOUSEHOLDS = ("hh-demo-0001", "hh-demo-0002")


def _cadre(cadre_id: str) -> Principal:
    return Principal(subject=cadre_id, scopes=frozenset({"visits:write", "registry:read"}))


class _Loader:
    def __init__(self, sessionmaker, settings, office: Principal, benefits) -> None:
        self.sessionmaker, self.settings, self.office, self.benefits = sessionmaker, settings, office, benefits
        self.now = datetime.now(timezone.utc)
        self.report = LoadReport()

    async def run(self, hid: str, step: Step) -> None:
        try:
            await getattr(self, f"_{step.kind}")(hid, step)
        except Problem as exc:
            raise RuntimeError(f"demo step {step.kind} on {hid} at {step.at.isoformat()} refused: "
                               f"{exc.status} {exc.body()}") from exc

    async def _pair(self, hid: str, step: Step) -> None:
        async with transaction(self.sessionmaker) as session:
            await pair(session, hid, step.cadre, self.office, at=step.at)
        self.report.pairings += 1

    async def _unpair(self, hid: str, step: Step) -> None:
        async with transaction(self.sessionmaker) as session:
            await unpair(session, hid, step.cadre, step.params.get("reason"), self.office, at=step.at)
        self.report.unpairings += 1

    async def _visit(self, hid: str, step: Step) -> None:
        visit = parse_visit(visit_body(hid, step.at, step.params.get("observations")))
        await record_visit(self.sessionmaker, visit, _cadre(step.cadre), now=self.now)
        self.report.visits += 1

    async def _transition(self, hid: str, step: Step) -> None:
        request = TransitionRequest(action=step.params["action"], reason=step.params.get("reason"),
                                    override=step.params.get("override", False))
        await transition(self.sessionmaker, hid, request, self.office, now=step.at,
                         notice_period=timedelta(days=self.settings.notice_period_days), benefits=self.benefits,
                         if_match=None)
        self.report.transitions += 1

    async def _deceased(self, hid: str, step: Step) -> None:
        async with transaction(self.sessionmaker) as session:
            member = (await load_household(session, hid, self.office))["members"][step.params["member"]]
            await mark_deceased(session, hid, member["id"], date.fromisoformat(step.params["on"]),
                                step.params.get("note"), None, self.office)
        self.report.other_steps += 1

    async def _move(self, hid: str, step: Step) -> None:
        async with transaction(self.sessionmaker) as session:
            member = (await load_household(session, hid, self.office))["members"][step.params["member"]]
            await move_member(session, hid, member["id"], step.params["to"], step.params.get("relation"),
                              step.params.get("reason"), None, self.office)
        self.report.other_steps += 1
