"""The demo district's monitoring cases (防止返贫动态监测和帮扶), all three categories at different steps,
with stable ids, written through the registry's own monitoring code on their own dates (2019-2020):

* ``ml-demo-0008``: a department's lead for hh-demo-0008 (registered), still open;
* ``mo-demo-0035``: hh-demo-0035 (candidate), marginal_at_risk, identifying at ``democratic_appraisal``;
* ``mo-demo-0014``: hh-demo-0014 (exited, under monitoring), unstable_exited, ``monitored`` with measures;
* ``mo-demo-0010``: hh-demo-0010 (registered), sudden_hardship, ``eliminated`` in June 2020 on an answer of
  seven months above the range since 2019-11, kept as the last step's evidence. The demo runs in 2020, before the
  mechanism (and benefits' range) is in force, so that answer is the demo's own (``DemoElimination``, labelled
  ``kind: demo``), and the household's income record (4,262.00 for 2019) does not back it: audit's
  ``monitoring_eliminated_inside_range`` finds it, a seeded supervision finding like hh-demo-0181's forced exit
  (``DEMO_ANOMALIES`` in jingzhun_cli/demo.py).

Township and county steps are taken by two offices (separation of duties). None of these changes a
household's status: 0014 is monitored already, 0010 registered and 0035's case stops before data entry.
"""
from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import select

from services.registry.monitoring.leads import NewLead, record_lead
from services.registry.monitoring.objects import MeasureIn, ObjectIn, StepIn, add_measure, open_object, take_step
from services.registry.tables import monitoring_leads
from shared.auth import Principal

CHINA = timezone(timedelta(hours=8))
TOWNSHIP = Principal(subject="demo-township-office", scopes=frozenset({"admin"}))
COUNTY = Principal(subject="demo-county-office", scopes=frozenset({"admin"}))
NAMESPACE = uuid.UUID("0e3c9f52-6a1d-4b8e-8f27-5d4c3b2a1908")
IDENTIFICATION = ("risk_warning", "home_verification", "household_commitment", "information_comparison",
                  "democratic_appraisal", "village_notice", "township_review", "county_approval", "data_entry")
ELIMINATION = ("propose_elimination", "home_verification", "democratic_appraisal", "village_notice",
               "township_confirmation", "county_confirmation")
EVIDENCE = {"risk_warning": {"source": "预警信息"}, "home_verification": {"visited_by": "包村干部", "finding": "属实"},
            "household_commitment": {"signed": True, "form": "农户承诺授权书"},
            "information_comparison": {"checked": ["民政", "医保", "残联", "不动产"]},
            "democratic_appraisal": {"minutes": "村民代表大会会议记录", "attendance": 32, "agreed": 30},
            "village_notice": {"place": "村务公开栏", "days": 5}, "township_review": {"opinion": "同意"},
            "county_approval": {"document": "南扶办字〔2020〕号"}, "data_entry": {"system": "全国防返贫监测信息系统"},
            "propose_elimination": {"reason": "收入持续稳定超过监测范围"}, "township_confirmation": {"opinion": "同意"},
            "county_confirmation": {"document": "南扶办字〔2020〕号"}}
LEAD_IDS = ("ml-demo-0008", "ml-demo-0035", "ml-demo-0014", "ml-demo-0010")


def china(day: str, hour: int = 10) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=CHINA)


class DemoElimination:
    """What benefits answered about hh-demo-0010 when its risk was eliminated: income above the range since
    2019-11 (the registry's benefits client, answered in-process for the demo)."""

    def __init__(self, since: str = "2019-11-01") -> None:
        self.since = since

    async def monitoring_elimination(self, household_id: str, as_of: date) -> dict:
        months = (as_of.year - 2019) * 12 + as_of.month - 11
        return {"household_id": household_id, "eligible": months >= 6, "months_above_range": months,
                "above_range_since": self.since, "as_of": as_of.isoformat(),
                "explanation": [{"condition": "months_above_range >= 6", "value": months, "passed": months >= 6},
                                {"condition": "rigid_expenses_resolved", "value": True, "passed": True},
                                {"condition": "guarantees_and_drinking_water", "value": True, "passed": True}],
                "source": {"kind": "demo", "note": "demo district: the incomes recorded for hh-demo-0010"}}


async def _lead(sessionmaker, lead_id: str, household_id: str, channel: str, causes: list[str], day: str,
                notes: str) -> dict:
    lead = NewLead(f"demo:{uuid.uuid5(NAMESPACE, lead_id)}", household_id, channel, causes, china(day, 9), notes,
                   lead_id=lead_id)
    return (await record_lead(sessionmaker, lead, TOWNSHIP, now=china(day, 11), check_cadre=False))[1]


async def _steps(sessionmaker, object_id: str, actions, start: str, benefits, *, notice_days: int) -> None:
    at = china(start)
    for index, action in enumerate(actions):
        if action in ("township_review", "township_confirmation"):
            at += timedelta(days=notice_days)
        actor = COUNTY if action in ("county_approval", "county_confirmation") or index % 2 else TOWNSHIP
        if action in ("township_review", "township_confirmation"):
            actor = TOWNSHIP
        elif action in ("village_notice",):
            actor = COUNTY
        await take_step(sessionmaker, object_id, StepIn(action=action, evidence=EVIDENCE.get(action, {}),
                                                        as_of=at.date()),
                        actor, now=at, notice_period=timedelta(days=notice_days), benefits=benefits)
        at += timedelta(days=2)


async def load_demo_monitoring(sessionmaker, settings) -> int:
    """The four cases above, once (a second run finds their leads and adds nothing); returns the cases made."""
    async with sessionmaker() as session:
        if await session.scalar(select(monitoring_leads.c.id).where(monitoring_leads.c.id.in_(LEAD_IDS))):
            return 0
    notice = settings.monitoring_notice_days
    benefits = DemoElimination()
    await _lead(sessionmaker, "ml-demo-0008", "hh-demo-0008", "department", ["illness", "rigid_expense"],
                "2020-06-10", "[区医疗保障局] 年内住院自付超过 2 万元")

    await _lead(sessionmaker, "ml-demo-0035", "hh-demo-0035", "self_report", ["disaster"], "2020-05-06",
                "农户手机自主申报：暴雨冲毁蔬菜大棚")
    await open_object(sessionmaker, ObjectIn(lead_id="ml-demo-0035", category="marginal_at_risk"), TOWNSHIP,
                      now=china("2020-05-08"), object_id="mo-demo-0035")
    await _steps(sessionmaker, "mo-demo-0035", IDENTIFICATION[:5], "2020-05-09", benefits, notice_days=notice)

    await _lead(sessionmaker, "ml-demo-0014", "hh-demo-0014", "cadre_visit", ["illness", "income_drop"],
                "2020-01-06", "走访发现户主患慢性病，务工收入下降")
    await open_object(sessionmaker, ObjectIn(lead_id="ml-demo-0014", category="unstable_exited"), TOWNSHIP,
                      now=china("2020-01-07"), object_id="mo-demo-0014")
    await _steps(sessionmaker, "mo-demo-0014", IDENTIFICATION, "2020-01-08", benefits, notice_days=notice)
    for kind, cause, who, day in (("medical", "illness", "区医疗保障局", "2020-02-20"),
                                  ("employment", "income_drop", "区人力资源和社会保障局", "2020-03-02")):
        await add_measure(sessionmaker, "mo-demo-0014", MeasureIn(type=kind, risk_cause=cause, responsible=who,
                                                                  start_date=date.fromisoformat(day),
                                                                  status="in_progress"),
                          TOWNSHIP, now=china(day))

    await _lead(sessionmaker, "ml-demo-0010", "hh-demo-0010", "supervision", ["accident"], "2019-09-02",
                "督查反馈：户主务工受伤")
    await open_object(sessionmaker, ObjectIn(lead_id="ml-demo-0010", category="sudden_hardship"), TOWNSHIP,
                      now=china("2019-09-03"), object_id="mo-demo-0010")
    await _steps(sessionmaker, "mo-demo-0010", IDENTIFICATION, "2019-09-04", benefits, notice_days=notice)
    await add_measure(sessionmaker, "mo-demo-0010", MeasureIn(type="temporary_assistance", risk_cause="accident",
                                                              responsible="区民政局",
                                                              start_date=date(2019, 10, 15), status="completed"),
                      TOWNSHIP, now=china("2019-10-15"))
    await _steps(sessionmaker, "mo-demo-0010", ELIMINATION, "2020-06-01", benefits, notice_days=notice)
    return 3
