"""What the dashboard's pages and exports show, as tables the HTML and the CSV/XLSX share.

Truthfulness rules (issue 12, item 5):
* a pack's exit targets are compared only with the actuals of the area the targets were set for;
  a narrower area gets "无目标 / no target", never a percentage of somebody else's target;
* programmes are named in Chinese (shared/policy/program_names.yaml), the code kept beside the name;
* amounts are summed only within one unit (once, month, year, term, claim): a monthly 低保 and a
  one-off housing grant never share an axis; microcredit lines (``credit.microloan``: the most a
  household may borrow, not money paid) have their own panel and are never added to benefits;
* village population comes from the registry's areas (``village.updated`` carries it), never from
  household snapshots, which hold only the registered households; without it the incidence is
  "人口未导入 / population not imported", and a village with no poor people is "无贫困人口";
* the latest checkpoint shown commits to at least one record.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit.ledger.service import household_history, latest_meaningful_checkpoint
from services.audit.supervision.anomalies import RULES, Context, find_anomalies
from services.audit.supervision.common import in_area
from services.audit.supervision.progress import progress
from services.audit.tables import audit_entitlements, audit_households, audit_villages, ledger_records
from shared.idcard import mask_id_number
from shared.policy.program_names import program_name
from shared.problems import Problem

CREDIT_LINE_PROGRAM = "credit.microloan"
POOR_STATUSES = ("registered", "returned")
EVER_REGISTERED = ("registered", "returned", "exited", "monitored")
POPULATION_KEYS = ("population", "registered_population", "rural_population", "household_population",
                   "agricultural_population")
DEFAULT_MAX_INCIDENCE = Decimal("0.03")  # 贫困发生率降至3%以下 when a pack states no line
VILLAGE_PAGE = 500
HOUSEHOLD_PAGE = 500
HISTORY_PAGE = 200

STATUS_LABELS = {"candidate": "待识别 (candidate)", "registered": "在档贫困户 (registered)",
                 "exited": "已脱贫 (exited)", "monitored": "监测对象 (monitored)", "returned": "返贫 (returned)",
                 "removed": "已剔除 (removed)", "unknown": "未知 (unknown)"}
UNIT_LABELS = {"once": ("一次性", "one-off", "元"), "month": ("每月", "per month", "元/月"),
               "year": ("每年", "per year", "元/年"), "term": ("每期", "per term", "元/期"),
               "claim": ("按次", "per claim", "元/次"), None: ("未注明单位", "unit not given", "元")}
UNIT_ORDER = ("once", "month", "year", "term", "claim", None)
CHANGE_LABELS = {"granted": "授予 (granted)", "changed": "变更 (changed)", "revoked": "撤销 (revoked)"}
SEVERITY_LABELS = {"high": "高 (high)", "medium": "中 (medium)", "low": "低 (low)"}


@dataclass(frozen=True)
class Filters:
    area: str | None
    as_of: dt.date
    status: str | None = None
    program: str | None = None
    village: str | None = None
    rule: str | None = None

    @property
    def scope(self) -> str | None:
        """The narrowest area prefix the filters ask for (a village is an area too)."""
        return self.village or self.area


@dataclass(frozen=True)
class Column:
    key: str
    zh: str
    en: str

    @property
    def header(self) -> str:
        return f"{self.zh} ({self.en})"


@dataclass
class Table:
    name: str
    zh: str
    en: str
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    more: bool = False  # only the first page is here; the note says so
    note: str | None = None


def yuan(fen: int | None) -> Decimal:
    return (Decimal(int(fen or 0)) / 100).quantize(Decimal("0.01"))


def money(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


def percent(ratio: Decimal | None) -> str:
    return "—" if ratio is None else f"{ratio * 100:.2f}%"


def masked(value: str | None) -> str:
    """A number from the ledger is masked already; mask anything that is not, rather than trust it."""
    if not value:
        return ""
    return value if "*" in value else mask_id_number(value)


def check_filters(f: Filters) -> None:
    """Every filter value is one the data can hold: anything else is a 422, not an empty page."""
    from shared.policy.programs import KNOWN_PROGRAMS
    errors = []
    if f.status is not None and f.status not in STATUS_LABELS:
        errors.append({"loc": ["query", "status"], "msg": f"one of {', '.join(STATUS_LABELS)}"})
    if f.program is not None and f.program not in KNOWN_PROGRAMS:
        errors.append({"loc": ["query", "program"], "msg": "not a programme code any policy pack knows"})
    if f.rule is not None and f.rule not in RULES:
        errors.append({"loc": ["query", "rule"], "msg": f"one of {', '.join(RULES)}"})
    if f.village is not None and not f.village.isdigit():
        errors.append({"loc": ["query", "village"], "msg": "a village code (digits)"})
    if errors:
        raise Problem(422, "Invalid filter", "A filter names something the dashboard cannot filter on.",
                      type_="https://jingzhun.dev/problems/validation", errors=errors)
    if f.village is not None and f.area and not f.village.startswith(f.area):
        raise not_found("village", f.village)


def not_found(kind: str, key: str) -> Problem:
    # The same answer for "outside your area" and "does not exist": a page must not confirm what it hides.
    return Problem(404, "Not found", f"No {kind} {key} in this area.", type_="https://jingzhun.dev/problems/not-found")


# ---------------------------------------------------------------- progress against targets

PROGRESS_COLUMNS = [Column("pack", "政策包", "policy pack"), Column("region", "目标区划", "target region"),
                    Column("actuals_area", "实绩区划", "actuals area"), Column("year", "年度", "year"),
                    Column("target_people", "目标人数", "target people"),
                    Column("exited_people", "已脱贫人数", "exited people"),
                    Column("exited_households", "已脱贫户数", "exited households"),
                    Column("achieved", "完成率", "achieved")]


async def progress_blocks(session: AsyncSession, f: Filters) -> tuple[list[dict], Table]:
    """One block per pack with targets; targets are compared only where the actuals are the pack's own area."""
    found = await progress(session, f.scope)
    blocks, rows = [], []
    for block in found["areas"]:
        own_level = block["actuals_area"] == block["region"]
        years = []
        for y in block["years"]:
            target = y["target_people"] if own_level else None
            achieved = (Decimal(y["exited_people"]) / target).quantize(Decimal("0.0001")) if target else None
            if not own_level:
                label = "无目标 / no target"
            elif target is None:
                label = "本年无目标 / no target this year"
            else:
                label = percent(achieved)
            row = {"pack": block["pack"], "region": block["region"], "actuals_area": block["actuals_area"],
                   "year": y["year"], "target_people": target, "exited_people": y["exited_people"],
                   "exited_households": y["exited_households"], "achieved": label}
            years.append(row)
            rows.append(row)
        note = None if own_level else (
            f"目标为区划 {block['region']} 整体制定，本页区域 {block['actuals_area']} 无自己的目标，不计完成率 / "
            f"the targets are set for region {block['region']}; area {block['actuals_area']} has no target of "
            "its own, so no percentage is shown")
        blocks.append({"pack": block["pack"], "region": block["region"], "actuals_area": block["actuals_area"],
                       "own_level": own_level, "note": note, "years": years, "source": block.get("source")})
    return blocks, Table("progress", "脱贫进度与目标", "Exit progress against targets", PROGRESS_COLUMNS, rows)


# ---------------------------------------------------------------- villages

VILLAGE_COLUMNS = [Column("village_code", "村代码", "village code"), Column("village_name", "村", "village"),
                   Column("township_name", "乡镇", "township"), Column("poor_village", "贫困村", "poor village"),
                   Column("population", "户籍人口", "population"),
                   Column("poor_people", "贫困人口", "poor people"),
                   Column("poor_households", "贫困户数", "poor households"),
                   Column("registered_people", "建档立卡人口（累计）", "ever-registered people"),
                   Column("incidence", "贫困发生率", "poverty incidence"),
                   Column("incidence_status", "发生率判断", "incidence status")]


def village_population(data: dict | None) -> int | None:
    for key in POPULATION_KEYS:
        value = (data or {}).get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def max_incidence(village_code: str, on: dt.date, cache: dict[str, Decimal]) -> Decimal:
    region = village_code[:6]
    if region not in cache:
        from shared.policy import resolve_pack
        try:
            value = resolve_pack(region, on).param("village_exit.max_incidence", None)
        except LookupError:
            value = None
        cache[region] = Decimal(str(value)) if value is not None else DEFAULT_MAX_INCIDENCE
    return cache[region]


def incidence_status(population: int | None, poor: int, incidence: Decimal | None, line: Decimal) -> str:
    if population is None:
        return "人口未导入 / population not imported"
    if poor == 0:
        return "无贫困人口 / no poor people"
    if incidence < line:
        return f"低于 {line * 100:.0f}% / below {line * 100:.0f}%"
    return f"不低于 {line * 100:.0f}% / {line * 100:.0f}% or more"


async def village_table(session: AsyncSession, f: Filters, *, codes: list[str] | None = None) -> Table:
    """Villages under the filters' scope: those the registry's areas sent and those households name."""
    h, v = audit_households, audit_villages
    poor = func.sum(case((h.c.status.in_(POOR_STATUSES), h.c.population), else_=0))
    poor_households = func.sum(case((h.c.status.in_(POOR_STATUSES), 1), else_=0))
    ever = func.sum(case((h.c.status.in_(EVER_REGISTERED), h.c.population), else_=0))
    scope = f.scope
    house_q = (select(h.c.village_code, func.max(h.c.village_name), func.max(h.c.township_name), poor,
                      poor_households, ever).where(h.c.village_code.is_not(None)).group_by(h.c.village_code)
               .order_by(h.c.village_code).limit(VILLAGE_PAGE + 1))
    village_q = select(v).order_by(v.c.code).limit(VILLAGE_PAGE + 1)
    if scope:
        house_q = house_q.where(h.c.village_code.startswith(scope, autoescape=True))
        village_q = village_q.where(v.c.code.startswith(scope, autoescape=True))
    if codes is not None:
        house_q, village_q = house_q.where(h.c.village_code.in_(codes)), village_q.where(v.c.code.in_(codes))
    counted = {r[0]: r for r in (await session.execute(house_q)).all()}
    known = {r.code: r for r in (await session.execute(village_q)).all()}
    all_codes = sorted(set(counted) | set(known))
    more = len(counted) > VILLAGE_PAGE or len(known) > VILLAGE_PAGE or len(all_codes) > VILLAGE_PAGE
    lines: dict[str, Decimal] = {}
    rows = []
    for code in all_codes[:VILLAGE_PAGE]:
        village = known.get(code)
        data = (village.data if village is not None else None) or {}
        _, name, township, poor_people, poor_hh, registered = counted.get(code, (code, None, None, 0, 0, 0))
        poor_people, poor_hh, registered = int(poor_people or 0), int(poor_hh or 0), int(registered or 0)
        population = village_population(data)
        incidence = (Decimal(poor_people) / population).quantize(Decimal("0.0001")) if population else None
        is_poor = data.get("is_poor_village")
        rows.append({"village_code": code, "village_name": (village.name if village is not None else None) or name
                     or code, "township_name": (village.township_name if village is not None else None) or township
                     or "", "poor_village": "是" if is_poor else ("否" if is_poor is False else "—"),
                     "is_poor_village": is_poor, "population": population, "poor_people": poor_people,
                     "poor_households": poor_hh, "registered_people": registered,
                     "incidence_ratio": incidence, "incidence": percent(incidence),
                     "incidence_status": incidence_status(population, poor_people, incidence,
                                                          max_incidence(code, f.as_of, lines))})
    note = "户籍人口来自区划导入（registry 的村数据）/ population from the registry's area import" + (
        f"；仅显示前 {VILLAGE_PAGE} 个村 / first {VILLAGE_PAGE} villages only" if more else "")
    return Table("villages", "各村贫困发生率", "Poverty incidence by village", VILLAGE_COLUMNS, rows, more, note)


async def village_known(session: AsyncSession, code: str) -> bool:
    if await session.scalar(select(audit_villages.c.code).where(audit_villages.c.code == code)):
        return True
    return bool(await session.scalar(select(audit_households.c.household_id)
                                     .where(audit_households.c.village_code == code).limit(1)))


# ---------------------------------------------------------------- benefits by unit, credit lines

BENEFIT_COLUMNS = [Column("unit_label", "计量单位", "unit"), Column("program_name", "项目", "programme"),
                   Column("program", "项目代码", "programme code"), Column("entitlements", "待遇数", "entitlements"),
                   Column("households", "户数", "households"), Column("amount", "金额（元）", "amount (yuan)")]
CREDIT_COLUMNS = [Column("village_code", "村代码", "village code"), Column("village_name", "村", "village"),
                  Column("households", "授信户数", "households with a credit line"),
                  Column("total", "授信额度合计（元）", "credit lines, total (yuan)"),
                  Column("largest", "单户最高额度（元）", "largest line (yuan)")]


def _household_conditions(f: Filters) -> list:
    h = audit_households
    conditions = [in_area(h, f.scope)]
    if f.status:
        conditions.append(h.c.status == f.status)
    return [c for c in conditions if c is not None]


async def benefit_tables(session: AsyncSession, f: Filters) -> tuple[list[dict], Table]:
    """Entitlements in force by programme, one group per unit (never summed across units)."""
    e, h = audit_entitlements, audit_households
    query = (select(e.c.unit, e.c.program, func.count(), func.count(func.distinct(e.c.household_id)),
                    func.coalesce(func.sum(e.c.amount_fen), 0))
             .join(h, h.c.household_id == e.c.household_id)
             .where(e.c.program != CREDIT_LINE_PROGRAM, *_household_conditions(f))
             .group_by(e.c.unit, e.c.program))
    if f.program:
        query = query.where(e.c.program == f.program)
    by_unit: dict[str | None, list[dict]] = {}
    for unit, program, n, households, fen in (await session.execute(query)).all():
        unit = unit if unit in UNIT_LABELS else None
        zh, en, suffix = UNIT_LABELS[unit]
        by_unit.setdefault(unit, []).append({
            "unit": unit, "unit_label": f"{zh} ({en})", "program": program, "program_name": program_name(program),
            "entitlements": int(n), "households": int(households), "amount_value": yuan(fen),
            "amount": yuan(fen), "suffix": suffix})
    groups, rows = [], []
    for unit in UNIT_ORDER:
        if unit not in by_unit:
            continue
        items = sorted(by_unit[unit], key=lambda r: (-r["amount_value"], r["program"]))
        zh, en, suffix = UNIT_LABELS[unit]
        groups.append({"unit": unit or "none", "zh": zh, "en": en, "suffix": suffix, "rows": items,
                       "total": sum((r["amount_value"] for r in items), Decimal("0.00")),
                       "households": None})
        rows += items
    return groups, Table("benefits", "各项目待遇（按计量单位分列）", "Entitlements by programme, per unit",
                         BENEFIT_COLUMNS, rows,
                         note="金额只在同一计量单位内相加 / amounts are added up only within one unit")


async def credit_table(session: AsyncSession, f: Filters) -> tuple[dict, Table]:
    """Microcredit lines (the most each household may borrow) by village: never added to benefits."""
    e, h = audit_entitlements, audit_households
    base = [e.c.program == CREDIT_LINE_PROGRAM, e.c.amount_fen > 0, *_household_conditions(f)]
    query = (select(h.c.village_code, func.max(h.c.village_name), func.count(func.distinct(e.c.household_id)),
                    func.sum(e.c.amount_fen), func.max(e.c.amount_fen))
             .join(h, h.c.household_id == e.c.household_id).where(*base)
             .group_by(h.c.village_code).order_by(h.c.village_code).limit(VILLAGE_PAGE + 1))
    found = (await session.execute(query)).all()
    rows = [{"village_code": code or "", "village_name": name or code or "", "households": int(n),
             "total": yuan(total), "largest": yuan(largest)} for code, name, n, total, largest in found[:VILLAGE_PAGE]]
    totals = (await session.execute(select(func.count(func.distinct(e.c.household_id)),
                                           func.coalesce(func.sum(e.c.amount_fen), 0))
                                    .join(h, h.c.household_id == e.c.household_id).where(*base))).one()
    summary = {"households": int(totals[0]), "total": yuan(totals[1]), "program_name": program_name(CREDIT_LINE_PROGRAM),
               "program": CREDIT_LINE_PROGRAM}
    return summary, Table("credit", "扶贫小额信贷授信额度", "Microcredit lines", CREDIT_COLUMNS, rows,
                          len(found) > VILLAGE_PAGE,
                          "授信额度是可贷上限，不是已发放资金，不与待遇相加 / a credit line is the most a household "
                          "may borrow, not money paid, and is never added to benefits")


# ---------------------------------------------------------------- anomalies

ANOMALY_COLUMNS = [Column("title", "规则", "rule"), Column("rule", "规则代码", "rule code"),
                   Column("severity_label", "级别", "severity"), Column("household_id", "户", "household"),
                   Column("village_code", "村代码", "village code"), Column("detail", "情况", "detail"),
                   Column("evidence", "证据（台账记录）", "evidence: ledger record ids")]


async def anomaly_table(session: AsyncSession, f: Filters, *, no_visit_days: int, lookup_grace_days: int,
                        household_id: str | None = None, monitoring_lead_days: int = 15,
                        monitoring_measure_grace_days: int = 15) -> tuple[dict[str, int], Table]:
    found = await find_anomalies(session, Context(area=f.scope, as_of=f.as_of, no_visit_days=no_visit_days,
                                                  lookup_grace_days=lookup_grace_days, limit=200,
                                                  monitoring_lead_days=monitoring_lead_days,
                                                  monitoring_measure_grace_days=monitoring_measure_grace_days),
                                 rules=[f.rule] if f.rule else None)
    items = [a for a in found["items"] if household_id is None or a.get("household_id") == household_id]
    rows = [{**a, "severity_label": SEVERITY_LABELS.get(a["severity"], a["severity"]),
             "household_id": a.get("household_id") or "", "village_code": a.get("village_code") or "",
             "evidence": ", ".join(str(r) for r in a["evidence"]["record_ids"])} for a in items]
    counts = found["counts"] if household_id is None else {}
    if household_id is not None:
        for row in rows:
            counts[row["rule"]] = counts.get(row["rule"], 0) + 1
    truncated = found.get("truncated") or []
    return counts, Table("anomalies", "待处理异常", "Open anomalies", ANOMALY_COLUMNS, rows, bool(truncated),
                         ("每条规则最多 200 条，以下规则已截断 / at most 200 per rule; truncated: " + ", ".join(truncated))
                         if truncated else None)


# ---------------------------------------------------------------- households

HOUSEHOLD_COLUMNS = [Column("household_id", "户编号", "household id"), Column("head_name", "户主", "head"),
                     Column("head_id", "户主身份证号（脱敏）", "head's ID number (masked)"),
                     Column("status_label", "状态", "status"), Column("population", "人口", "members"),
                     Column("identified_year", "识别年度", "identified"), Column("exit_date", "脱贫日期", "exit date"),
                     Column("last_visit", "最近走访", "last visit"),
                     Column("entitlements", "在享待遇数", "entitlements in force")]


async def household_table(session: AsyncSession, f: Filters) -> Table:
    h, e = audit_households, audit_entitlements
    held = (select(func.count()).where(e.c.household_id == h.c.household_id).correlate(h).scalar_subquery())
    query = (select(h, held.label("held")).where(h.c.version > 0, *_household_conditions(f))
             .order_by(h.c.household_id).limit(HOUSEHOLD_PAGE + 1))
    if f.program:
        query = query.where(select(e.c.household_id).where(e.c.household_id == h.c.household_id,
                                                            e.c.program == f.program).exists())
    found = (await session.execute(query)).all()
    rows = [{"household_id": r.household_id, "head_name": r.head_name or "", "head_id": masked(r.head_masked_id),
             "status": r.status, "status_label": STATUS_LABELS.get(r.status, r.status), "population": r.population,
             "identified_year": r.identified_year, "exit_date": r.exit_date or "",
             "last_visit": r.last_visit_at.date().isoformat() if r.last_visit_at else "",
             "village_code": r.village_code, "entitlements": int(r.held or 0)} for r in found[:HOUSEHOLD_PAGE]]
    more = len(found) > HOUSEHOLD_PAGE
    return Table("households", "农户", "Households", HOUSEHOLD_COLUMNS, rows, more,
                 f"仅显示前 {HOUSEHOLD_PAGE} 户 / first {HOUSEHOLD_PAGE} households only" if more else None)


async def household_row(session: AsyncSession, household_id: str, area: str | None):
    h = audit_households
    row = (await session.execute(select(h).where(h.c.household_id == household_id, h.c.version > 0))).first()
    if row is None:
        raise not_found("household", household_id)
    if area:
        where = row.village_code or row.region_code or ""
        if not where.startswith(area):
            raise not_found("household", household_id)
    return row


ENTITLEMENT_COLUMNS = [Column("program_name", "项目", "programme"), Column("program", "项目代码", "programme code"),
                       Column("person_id", "成员", "member"), Column("amount", "金额（元）", "amount (yuan)"),
                       Column("unit_label", "计量单位", "unit"), Column("period", "期间", "period"),
                       Column("pack", "政策包", "policy pack"), Column("record_id", "台账记录", "ledger record")]
DECISION_COLUMNS = [Column("time", "时间", "time"), Column("type", "事件", "event"), Column("source", "来源", "source"),
                    Column("actor", "操作人", "actor"), Column("summary", "决定", "decision"),
                    Column("record_id", "台账记录", "ledger record"), Column("intact", "哈希校验", "hash check")]


async def entitlement_table(session: AsyncSession, household_id: str) -> Table:
    e = audit_entitlements
    found = (await session.execute(select(e).where(e.c.household_id == household_id)
                                   .order_by(e.c.program, e.c.person_key))).all()
    rows = []
    for r in found:
        unit = r.unit if r.unit in UNIT_LABELS else None
        zh, en, _ = UNIT_LABELS[unit]
        rows.append({"program_name": program_name(r.program), "program": r.program, "person_id": r.person_id or "",
                     "amount": yuan(r.amount_fen) if r.amount_fen is not None else None,
                     "unit_label": f"{zh} ({en})" if r.program != CREDIT_LINE_PROGRAM else "授信额度 (credit line)",
                     "period": r.period or "", "pack": r.pack or "", "record_id": r.record_id})
    return Table("entitlements", "当前待遇", "Entitlements in force", ENTITLEMENT_COLUMNS, rows)


def _entitlement_text(d: dict) -> str:
    amounts = f"{d.get('amount_before') or '—'} → {d.get('amount_after') or '—'}"
    change = CHANGE_LABELS.get(d.get("change"), d.get("change") or "")
    return f"{program_name(d['program'])}（{d['program']}）{change} {amounts} {d.get('unit') or ''}".strip()


def _assessment_text(d: dict) -> str:
    return f"{d.get('kind')}: {'通过 (met)' if d.get('result') else '未通过 (not met)'} {', '.join(d.get('unmet') or [])}".strip()


def decision_text(item: dict) -> str:
    d = item["decision"]
    if isinstance(d.get("monitoring"), dict):
        return f"监测帮扶 (monitoring): {d['monitoring'].get('line') or ''}"
    if isinstance(d.get("entitlements"), list):  # entitlements.decided: everything one household version decided
        return "; ".join([_entitlement_text(e) for e in d["entitlements"] if isinstance(e, dict) and e.get("program")]
                         + [_assessment_text(a) for a in d.get("assessments") or [] if isinstance(a, dict)])
    if d.get("program"):
        return _entitlement_text(d)
    if d.get("kind"):
        return _assessment_text(d)
    parts = []
    if d.get("status"):
        parts.append(STATUS_LABELS.get(d["status"], d["status"]))
    step = d.get("step") or {}
    if step.get("action"):
        parts.append(f"{step['action']}{'（强制 override）' if step.get('override') else ''}")
    if d.get("version") is not None:
        parts.append(f"v{d['version']}")
    return " · ".join(parts)


async def decision_table(session: AsyncSession, household_id: str, algorithm: str) -> Table:
    items, next_cursor = await household_history(session, household_id, cursor=None, limit=HISTORY_PAGE,
                                                 algorithm=algorithm)
    rows = [{"time": i["time"], "type": i["type"], "source": i["source"], "actor": i["actor"] or "",
             "summary": decision_text(i), "record_id": i["record_id"],
             "intact": "完好 (intact)" if i["intact"] else "不符 (hash mismatch)"} for i in items]
    return Table("decisions", "决定历史（台账）", "Decision history (ledger)", DECISION_COLUMNS, rows,
                 next_cursor is not None,
                 f"仅显示前 {HISTORY_PAGE} 条；完整历史见 /v1/audit/households/{household_id}/history / first "
                 f"{HISTORY_PAGE} only" if next_cursor else None)


# ---------------------------------------------------------------- ledger

async def ledger_summary(session: AsyncSession) -> dict[str, Any]:
    records = await session.scalar(select(func.count()).select_from(ledger_records))
    found = await latest_meaningful_checkpoint(session)
    checkpoint = found["checkpoint"]
    view = None
    if checkpoint is not None:
        data = checkpoint["data"] or {}
        trigger = data.get("trigger") or ("daily" if checkpoint["event_id"].startswith("checkpoint-daily-")
                                          else "manual")
        view = {"merkle_root": data.get("merkle_root") or "", "time": checkpoint["time"],
                "records": data.get("records"), "chains": data.get("chains"),
                "trigger": {"startup": "启动时 (at start-up)", "shutdown": "停止时 (at shutdown)",
                            "daily": "每日 (daily)"}.get(trigger, "手动 (manual)")}
    return {"records": int(records or 0), "checkpoint": view, "skipped_empty": found["skipped_empty"],
            "only_empty": checkpoint is None and found["latest"] is not None}


# ---------------------------------------------------------------- monitoring (防止返贫动态监测)

MONITORING_CATEGORY_LABELS = {"unstable_exited": "脱贫不稳定户 (unstable exited)",
                              "marginal_at_risk": "边缘易致贫户 (marginal, at risk)",
                              "sudden_hardship": "突发严重困难户 (sudden hardship)", "unknown": "未注明 (not given)"}
MONITORING_STATUS_LABELS = {"identifying": ("核查认定中", "identifying"), "monitored": ("监测帮扶中", "monitored"),
                            "eliminating": ("风险消除程序中", "eliminating"), "eliminated": ("已消除风险", "eliminated"),
                            "dismissed": ("核查排除", "dismissed")}
MONITORING_STEP_LABELS = {
    "risk_warning": "风险预警", "home_verification": "入户核实", "household_commitment": "农户承诺授权",
    "information_comparison": "信息比对", "democratic_appraisal": "民主评议", "village_notice": "村级公示",
    "township_review": "乡镇审核", "county_approval": "县级审定", "data_entry": "录入系统",
    "propose_elimination": "提出风险消除", "township_confirmation": "乡镇确认", "county_confirmation": "县级确认"}
MONITORING_PROCEDURE_LABELS = {"identification": "核查认定 (identification)", "elimination": "风险消除 (elimination)"}
MONITORING_CATEGORY_COLUMNS = [Column("category_label", "监测对象类别", "category"),
                               *[Column(s, zh, en) for s, (zh, en) in MONITORING_STATUS_LABELS.items()],
                               Column("total", "合计", "total")]
MONITORING_STEP_COLUMNS = [Column("procedure_label", "程序", "procedure"), Column("step_label", "最近完成步骤",
                                                                                  "last completed step"),
                           Column("step", "步骤代码", "step code"), Column("objects", "监测对象数", "objects")]
MONITORING_OVERDUE_COLUMNS = [Column("kind_label", "逾期事项", "overdue item"),
                              Column("household_id", "户", "household"), Column("village_code", "村代码", "village code"),
                              Column("item_id", "线索或监测对象", "lead or object"), Column("since", "起算日期", "since"),
                              Column("days", "天数", "days"), Column("detail", "情况", "detail")]


async def monitoring_tables(session: AsyncSession, f: Filters, *, lead_days: int,
                            grace_days: int) -> tuple[dict[str, Any], Table, Table, Table]:
    """The monitoring section: objects by category × status and by last completed step as of the page's
    date, the lead-to-identification and identification-to-first-measure times, and the overdue items."""
    from services.audit.monitoring.service import monitoring_report
    found = await monitoring_report(session, area=f.scope, as_of=f.as_of, lead_days=lead_days,
                                    grace_days=grace_days, limit=OVERDUE_PAGE)
    objects = found["objects"]
    by = {(r["category"], r["status"]): r["objects"] for r in objects["by_category_status"]}
    categories = [c for c in MONITORING_CATEGORY_LABELS if c in objects["by_category"]] + \
        [c for c in objects["by_category"] if c not in MONITORING_CATEGORY_LABELS]
    category_rows = [{"category": c, "category_label": MONITORING_CATEGORY_LABELS.get(c, c),
                      **{s: by.get((c, s), 0) for s in MONITORING_STATUS_LABELS}, "total": objects["by_category"][c]}
                     for c in categories]
    if category_rows:
        category_rows.append({"category": "", "category_label": "合计 (total)", "total": objects["total"],
                              **{s: objects["by_status"].get(s, 0) for s in MONITORING_STATUS_LABELS}})
    step_rows = [{"procedure": r["procedure"] or "", "procedure_label": MONITORING_PROCEDURE_LABELS.get(
                     r["procedure"], r["procedure"] or "—"),
                  "step": r["step"] or "", "step_label": f"{MONITORING_STEP_LABELS.get(r['step'], r['step'])} "
                  f"({r['step']})" if r["step"] else "尚无步骤 (no step yet)", "objects": r["objects"]}
                 for r in objects["by_step"]]
    overdue_rows = [{"kind": "lead", "kind_label": "线索逾期未核实 (lead not verified)",
                     "household_id": i["household_id"], "village_code": i["village_code"] or "",
                     "item_id": i["lead_id"], "since": i["reported_on"], "days": i["days_open"],
                     "detail": f"{i['channel']}：{'、'.join(i['risk_causes'])}；超过 {lead_days} 天 / more than "
                               f"{lead_days} days"} for i in found["overdue_leads"]["items"]]
    overdue_rows += [{"kind": "object", "kind_label": "未落实帮扶措施 (no assistance measure)",
                      "household_id": i["household_id"], "village_code": i["village_code"] or "",
                      "item_id": i["object_id"], "since": i["identified_on"],
                      "days": i["days_since_identification"],
                      "detail": f"{MONITORING_CATEGORY_LABELS.get(i['category'], i['category'])}；认定后超过 "
                                f"{grace_days} 天无帮扶措施 / no measure more than {grace_days} days after identification"}
                     for i in found["objects_without_measures"]["items"]]
    more = bool(found["overdue_leads"]["next_cursor"] or found["objects_without_measures"]["next_cursor"])
    summary = {"objects": objects["total"], "leads_open": found["leads"]["open"],
               "leads_overdue": found["leads"]["overdue"], "durations": found["durations"],
               "lead_days": lead_days, "grace_days": grace_days}
    return (summary,
            Table("monitoring", "监测对象（按类别与状态）", "Monitoring objects by category and status",
                  MONITORING_CATEGORY_COLUMNS, category_rows,
                  note=f"状态为评估日期 {f.as_of.isoformat()} 当日 / status as of {f.as_of.isoformat()}"),
            Table("monitoring_steps", "监测对象（按最近完成步骤）", "Monitoring objects by last completed step",
                  MONITORING_STEP_COLUMNS, step_rows),
            Table("monitoring_overdue", "监测逾期事项", "Overdue monitoring items", MONITORING_OVERDUE_COLUMNS,
                  overdue_rows, more,
                  f"每类仅显示前 {OVERDUE_PAGE} 项；完整清单见 /v1/supervision/monitoring / first {OVERDUE_PAGE} of "
                  "each kind" if more else None))


OVERDUE_PAGE = 100
