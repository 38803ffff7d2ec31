"""Departments' pushes of leads (部门筛查预警数据): CSV/XLSX or JSON, all or nothing, with a report.

Civil affairs, medical insurance, education, housing and emergency management send lists of households at
risk. A row names the household by 户编号 or by a member's ID number (found through the person index) and
gives the risk types (the ledger's words: 因病 · 因残 · 意外事故 · 收入骤减 · 刚性支出 … or the codes), the date
it was reported, optionally the channel (default ``department``), the reporting department and notes. Headers
are read as the ledger import reads them (services/registry/imports/headers.py: full-width brackets, stars,
units, official spellings such as 公民身份号码).

Every row is checked first; any error → 422 with the report ``{rows, created, merged, replayed, errors: [{row,
column, message}]}`` and nothing written. Otherwise every lead is recorded in one transaction (deduplicated
per household like any lead). ``dry_run`` runs the same transaction and rolls it back. A row's
``client_lead_id`` is derived from its content (or from 线索编号), so pushing the same file again records
nothing new (``replayed``).
"""
from __future__ import annotations

import asyncio
import io
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from services.registry.common import CHINA_TZ
from services.registry.imports.cells import CellError, bilingual, date_text, id_number_text, id_number_problem
from services.registry.imports.headers import HeaderTable, normalise_header
from services.registry.imports.ledger import RISK, SEPARATORS
from services.registry.imports.limits import UploadLimits, check_archive, is_zip
from services.registry.imports.tabular import read_sheets
from services.registry.monitoring.leads import NewLead, _differences, _stored, record_new
from services.registry.tables import households, person_index
from shared.auth import Principal
from shared.idcard import InvalidIdNumber, validate_id_number
from shared.problems import Problem

MAX_ROWS = 20_000
NAMESPACE = uuid.UUID("6f1d2c8e-3b7a-4e59-9a41-0d5c7e2b8f13")
VALIDATION = "https://jingzhun.dev/problems/validation"

HEADERS = HeaderTable({
    "client_lead_id": ("线索编号", "client_lead_id"),
    "household_id": ("户编号", "户编码", "户号", "家庭编号", "household_id"),
    "head_name": ("户主姓名", "户主", "head_name"),
    "id_number": ("身份证号", "身份证号码", "证件号码", "公民身份号码", "居民身份证号码", "身份证件号码", "id_number"),
    "risk_causes": ("风险类型", "监测风险类型", "返贫风险", "风险原因", "致贫返贫风险", "risk_causes"),
    "channel": ("发现渠道", "线索来源", "channel"),
    "reported_at": ("上报日期", "上报时间", "发现日期", "预警日期", "reported_at"),
    "department": ("上报部门", "上报单位", "推送部门", "数据来源", "department"),
    "notes": ("备注", "备注(说明)", "备注说明", "情况说明", "说明", "notes"),
})
TITLES = {"client_lead_id": "线索编号", "household_id": "户编号", "head_name": "户主姓名", "id_number": "身份证号",
          "risk_causes": "风险类型", "channel": "发现渠道", "reported_at": "上报日期", "department": "上报部门",
          "notes": "备注"}
RISK_WORDS = {**RISK, "意外伤害": "accident", "因疫": "epidemic", "收入大幅下降": "income_drop",
              "收入大幅缩减": "income_drop", "刚性支出过大": "rigid_expense", "刚性支出较大": "rigid_expense",
              "缺劳动力": "lack_of_labour", "内生动力不足": "low_motivation", "交通落后": "poor_transport"}
CHANNEL_WORDS = {"农户自主申报": "self_report", "自主申报": "self_report", "农户申报": "self_report",
                 "干部排查": "cadre_visit", "干部走访排查": "cadre_visit", "干部走访": "cadre_visit",
                 "部门筛查预警": "department", "部门预警": "department", "部门推送": "department", "部门": "department",
                 "部门筛查": "department", "部门数据": "department", "部门数据比对": "department",
                 "行业部门推送": "department", "行业部门筛查": "department", "入户排查": "cadre_visit",
                 "干部排查走访": "cadre_visit", "网格员排查": "cadre_visit",
                 "监督检查": "supervision", "督查反馈": "supervision", "平台分析": "platform", "系统预警": "platform"}
CODES = set(RISK.values()) | {"accident", "epidemic", "income_drop", "rigid_expense"}
IGNORED = {normalise_header(title) for title in ("序号", "编号")}  # row numbers offices add; nothing to read
CHANNELS = ("self_report", "cadre_visit", "department", "supervision", "platform")


@dataclass
class PushRow:
    row: int
    cells: dict[str, Any]
    lead: NewLead | None = None
    errors: list[dict] = field(default_factory=list)

    def error(self, key: str, zh: str, en: str) -> None:
        self.errors.append({"row": self.row, "column": TITLES.get(key, key), "message": bilingual(zh, en)})


def _text(value: Any) -> str:
    from services.registry.imports.cells import plain_text
    return plain_text(value)


def read_file(data: bytes, filename: str | None) -> tuple[list[PushRow], list[dict]]:
    """Rows of the file's first sheet as key → raw cell, and the header errors (runs in a worker thread)."""
    limits = UploadLimits(max_rows=MAX_ROWS)
    if is_zip(data[:4], filename):
        check_archive(io.BytesIO(data), limits)
    sheets = read_sheets(data, filename, limits=limits,
                         header_hint=lambda row: sum(1 for title in row if title and HEADERS.key_of(title)))
    sheet = sheets[0]
    columns: dict[str, int] = {}
    errors = []
    for index, title in enumerate(sheet.header):
        if not title or normalise_header(title) in IGNORED:
            continue
        key = HEADERS.key_of(title)
        if key is None:
            hint = HEADERS.suggestion(title)
            errors.append({"row": sheet.first_line - 1, "column": title, "message": bilingual(
                f"不认识的列 {title!r}" + (f"（是否应为 {hint}？）" if hint else ""),
                f"unknown column {title!r}" + (f" (did you mean {hint}?)" if hint else ""))})
        elif key in columns:
            errors.append({"row": sheet.first_line - 1, "column": title,
                           "message": bilingual("列重复", f"the column {TITLES[key]} appears twice")})
        else:
            columns[key] = index
    rows = []
    for offset, cells in enumerate(sheet.rows):
        if all(value in (None, "") for value in cells):
            continue
        rows.append(PushRow(sheet.first_line + offset, {key: cells[index] for key, index in columns.items()}))
    return rows, errors


def json_rows(items: list[Any]) -> list[PushRow]:
    rows = []
    for index, item in enumerate(items):
        row = PushRow(index + 1, item if isinstance(item, dict) else {})
        if not isinstance(item, dict):
            row.error("leads", "应为对象", "each lead must be a JSON object")
        unknown = sorted(set(row.cells) - set(TITLES))
        for key in unknown:
            row.error(key, f"未知字段 {key}", f"unknown field {key}")
        if isinstance(row.cells.get("risk_causes"), list):
            row.cells = {**row.cells, "risk_causes": "、".join(str(c) for c in row.cells["risk_causes"])}
        rows.append(row)
    return rows


def _words(row: PushRow, text: str) -> list[str]:
    causes = []
    for word in (w for w in SEPARATORS.split(text) if w):
        code = RISK_WORDS.get(word) or (word if word in CODES else None)
        if code is None:
            row.error("risk_causes", f"不认识的风险类型 {word!r}（可用：因病、因残、因学、因灾、意外事故、疫情、收入骤减、"
                      "刚性支出 等）", f"unknown risk type {word!r} (use 因病, 因残, 意外事故, 收入骤减, 刚性支出 … or "
                      "the codes illness, accident, income_drop, rigid_expense …)")
        else:
            causes.append(code)
    return causes


def _parse(row: PushRow) -> dict | None:
    """The row's own checks (no database): what it says, or None with errors."""
    cells = row.cells
    number = None
    if cells.get("id_number") not in (None, ""):
        try:
            text = id_number_text("id_number", cells["id_number"])
            try:
                number = validate_id_number(text).number
            except InvalidIdNumber as exc:
                raise id_number_problem("id_number", exc, text) from None
        except CellError as exc:
            row.error("id_number", *str(exc).split(" / ", 1))
    household_id = _text(cells.get("household_id"))
    if not household_id and number is None and "id_number" not in [e["column"] for e in row.errors]:
        row.error("household_id", "须填写户编号或身份证号", "give the household id (户编号) or an ID number (身份证号)")
    causes = _words(row, _text(cells.get("risk_causes")))
    if not causes and not any(e["column"] == TITLES["risk_causes"] for e in row.errors):
        row.error("risk_causes", "须填写风险类型", "give at least one risk type (风险类型)")
    channel_text = _text(cells.get("channel")) or "department"
    channel = CHANNEL_WORDS.get(channel_text) or (channel_text if channel_text in CHANNELS else None)
    if channel is None:
        row.error("channel", f"不认识的发现渠道 {channel_text!r}", f"unknown channel {channel_text!r} (农户自主申报, "
                  "干部排查, 部门筛查预警, 监督检查, 平台分析 or the codes)")
    reported = None
    try:
        day = date_text("reported_at", cells.get("reported_at"))
        if not day:
            row.error("reported_at", "须填写上报日期", "give the date reported (上报日期)")
        else:
            reported = datetime.fromisoformat(day).replace(tzinfo=CHINA_TZ)
    except CellError as exc:
        row.error("reported_at", *str(exc).split(" / ", 1))
    if row.errors:
        return None
    department, notes = _text(cells.get("department")), _text(cells.get("notes"))
    note = " ".join(filter(None, (f"[{department}]" if department else "", notes))) or None
    return {"household_id": household_id or None, "id_number": number, "head_name": _text(cells.get("head_name")),
            "risk_causes": causes, "channel": channel, "reported_at": reported, "notes": note,
            "client_lead_id": _text(cells.get("client_lead_id"))}


async def push(sessionmaker: async_sessionmaker, rows: list[PushRow], header_errors: list[dict],
               principal: Principal, *, now: datetime, dry_run: bool) -> tuple[int, dict]:
    """(status, report): 201 written, 200 dry run; a Problem (422, with the report) when anything is wrong."""
    if not rows and not header_errors:
        header_errors = [{"row": 1, "column": "", "message": bilingual("文件中没有线索", "the push holds no leads")}]
    parsed = [(row, _parse(row)) for row in rows]
    report: dict[str, Any] = {"rows": len(rows), "created": 0, "merged": 0, "replayed": 0, "dry_run": dry_run,
                              "errors": [], "leads": []}
    async with sessionmaker() as session:
        async with session.begin() as tx:
            for row, fields in parsed:
                if fields is None:
                    continue
                household_id = fields["household_id"]
                if fields["id_number"]:
                    found = await session.scalar(select(person_index.c.household_id).where(
                        person_index.c.id_number == fields["id_number"]))
                    if found is None:
                        row.error("id_number", "身份证号不属于任何在册农户的在世成员",
                                  "the ID number is not a living member of any registered household")
                        continue
                    if household_id and household_id != found:
                        row.error("id_number", f"身份证号属于户 {found}，与户编号 {household_id} 不符",
                                  f"the ID number belongs to household {found}, not {household_id}")
                        continue
                    household_id = found
                snapshot = await session.scalar(select(households.c.snapshot).where(households.c.id == household_id))
                from services.registry.households.service import area_code_of
                if snapshot is None or not principal.sees_area(area_code_of(snapshot)):
                    row.error("household_id", f"没有户 {household_id}", f"no household {household_id}")
                    continue
                head = next((m for m in snapshot.get("members") or [] if m.get("relation") == "head"), None)
                if fields["head_name"] and head is not None and head.get("name") != fields["head_name"]:
                    row.error("head_name", f"户主姓名 {fields['head_name']!r} 与该户户主不符",
                              f"head name {fields['head_name']!r} does not match the household's head")
                    continue
                identity = fields["client_lead_id"] or "|".join(
                    [household_id, fields["channel"], ",".join(fields["risk_causes"]),
                     fields["reported_at"].date().isoformat(), fields["notes"] or ""])
                client_lead_id = f"push:{uuid.uuid5(NAMESPACE, identity)}"
                lead = NewLead(client_lead_id, household_id, fields["channel"], fields["risk_causes"],
                               fields["reported_at"], fields["notes"])
                stored = await _stored(session, client_lead_id)
                if stored is not None:
                    if _differences(stored, lead):
                        row.error("client_lead_id", f"线索编号已用于线索 {stored.id}，内容不同",
                                  f"the lead id already names lead {stored.id} with other content")
                    else:
                        report["replayed"] += 1
                        report["leads"].append({"row": row.row, "lead_id": stored.id, "household_id": household_id,
                                                "status": stored.status, "outcome": "replayed"})
                    continue
                try:
                    body = await record_new(session, lead, principal, now=now, check_cadre=False)
                except Problem as problem:
                    row.error("reported_at" if problem.status == 422 else "household_id",
                              problem.detail or problem.title, problem.detail or problem.title)
                    continue
                report["merged" if body["status"] == "merged" else "created"] += 1
                report["leads"].append({"row": row.row, "lead_id": body["id"], "household_id": household_id,
                                        "status": body["status"], "outcome": "recorded"})
            report["errors"] = header_errors + [e for row in rows for e in row.errors]
            if report["errors"] or dry_run:
                await tx.rollback()
    if report["errors"]:
        report["created"] = report["merged"] = report["replayed"] = 0
        report["leads"] = []
        raise Problem(422, "Lead push refused", f"{len(report['errors'])} problem(s) in the push; nothing was written.",
                      type_=VALIDATION, report=report)
    return (200 if dry_run else 201), report


async def read_upload(data: bytes, filename: str | None) -> tuple[list[PushRow], list[dict]]:
    return await asyncio.to_thread(read_file, data, filename)
