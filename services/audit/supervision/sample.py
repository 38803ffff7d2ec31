"""Third-party evaluation samples (第三方评估抽样): households that exited in a year, drawn at
random per township with proportional allocation, reproducible from a seed.

Selection is by rank: each household's key is SHA-256(seed | household id) and a township
takes its n_h smallest keys. The same seed gives the same sample, adding a household
elsewhere never reshuffles a township, and only n_h keys are held in memory.
"""
from __future__ import annotations

import csv
import hashlib
import heapq
import io
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit.supervision.common import in_area
from services.audit.tables import audit_households
from shared.spreadsheet import csv_row

#: What a field evaluator checks in every sampled household (seed notes §6 and the exit test).
CHECKLIST: list[dict[str, str]] = [
    {"code": "income_above_line", "zh": "人均纯收入稳定超过当年扶贫标准（入户核算收入）",
     "en": "Per-capita net income is stably above the year's line (recompute it in the household)",
     "source": "004 L22; 002 L37"},
    {"code": "two_no_worries", "zh": "不愁吃、不愁穿", "en": "Enough food and clothing", "source": "004 L22"},
    {"code": "three_guarantees", "zh": "义务教育、基本医疗、住房安全有保障（无辍学、参保、住房鉴定为A/B级）",
     "en": "Compulsory education, basic medical care and safe housing are guaranteed", "source": "004 L22"},
    {"code": "drinking_water", "zh": "饮水安全有保障", "en": "Safe drinking water", "source": "004 L22"},
    {"code": "genuine_exit", "zh": "真实脱贫、数据准确（无数字脱贫、弄虚作假）",
     "en": "The exit is genuine and the recorded data are accurate (no paper exit, no falsification)",
     "source": "000 L403; 004 L202"},
    {"code": "procedure_and_notice", "zh": "退出程序公开、经过公示公告", "en": "Open exit procedure with public notice",
     "source": "000 L403; 003 L37"},
    {"code": "complete_files", "zh": "档案完整（一户一档）", "en": "Complete household file", "source": "000 L403"},
    {"code": "household_acknowledges", "zh": "群众认可度：农户对退出结果认可",
     "en": "The household and villagers acknowledge the exit", "source": "000 L402"},
    {"code": "assistance_continues", "zh": "帮扶干部结对、脱贫不脱政策", "en": "Pairing and post-exit policies continue",
     "source": "000 L402-L403"},
]
RELOCATED_CHECK = {"code": "relocated_moved_in", "zh": "易地搬迁户已搬迁入住", "en": "Relocated household has moved in",
                   "source": "001 L929"}
OVERRIDE_CHECK = {"code": "override_review", "zh": "复核未达标强制退出的理由和证据",
                  "en": "Review the reasons and evidence for exiting despite unmet criteria", "source": "000 L403"}

UNKNOWN_STRATUM = "(unknown township)"


def allocate(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Proportional allocation by largest remainder, at least one per non-empty stratum, never more
    than a stratum holds. With fewer draws than strata every stratum still gets one."""
    strata = {k: v for k, v in sizes.items() if v > 0}
    total = sum(strata.values())
    if not strata:
        return {}
    n = min(max(n, len(strata)), total)
    quotas = {k: n * v / total for k, v in strata.items()}
    alloc = {k: min(strata[k], max(1, int(q))) for k, q in quotas.items()}
    order = sorted(strata, key=lambda k: (-(quotas[k] - int(quotas[k])), -strata[k], k))
    while sum(alloc.values()) < n:
        grew = False
        for k in order:
            if sum(alloc.values()) >= n:
                break
            if alloc[k] < strata[k]:
                alloc[k] += 1
                grew = True
        if not grew:
            break
    while sum(alloc.values()) > n:  # the minimum of one pushed us over: take back from the largest
        k = max((k for k in alloc if alloc[k] > 1), key=lambda k: (alloc[k] - quotas[k], alloc[k], k))
        alloc[k] -= 1
    return alloc


def rank_key(seed: str, household_id: str) -> str:
    return hashlib.sha256(f"{seed}|{household_id}".encode()).hexdigest()


async def draw_sample(session: AsyncSession, *, area: str | None, year: int, n: int, seed: str) -> dict[str, Any]:
    h = audit_households
    base = [h.c.exit_year == year, h.c.status != "removed"]
    if area:
        base.append(in_area(h, area))
    stratum = func.coalesce(h.c.township_code, UNKNOWN_STRATUM)
    sizes = dict((await session.execute(select(stratum, func.count()).where(*base).group_by(stratum))).all())
    allocation = allocate(sizes, n)
    chosen: list[str] = []
    for township, take in sorted(allocation.items()):
        condition = h.c.township_code.is_(None) if township == UNKNOWN_STRATUM else h.c.township_code == township
        ids = (await session.stream_scalars(select(h.c.household_id).where(*base, condition)
                                            .execution_options(yield_per=1000)))
        keyed = [(rank_key(seed, hid), hid) async for hid in ids]
        chosen += [hid for _, hid in heapq.nsmallest(take, keyed)]
    items = []
    for start in range(0, len(chosen), 500):
        rows = (await session.execute(select(h).where(h.c.household_id.in_(chosen[start:start + 500])))).all()
        items += [_sample_item(r) for r in rows]
    items.sort(key=lambda i: (i["township_code"] or "", i["village_code"] or "", i["household_id"]))
    return {"area": area, "year": year, "seed": seed, "n_requested": n, "n": len(items),
            "population": sum(sizes.values()),
            "strata": [{"township_code": k, "households": sizes[k], "sampled": allocation.get(k, 0)}
                       for k in sorted(sizes)],
            "method": "stratified by township, proportional allocation (largest remainder, min 1 per stratum); "
                      "within a stratum the n_h smallest SHA-256(seed|household_id)",
            "checklist": CHECKLIST + [RELOCATED_CHECK, OVERRIDE_CHECK], "items": items}


def _sample_item(row) -> dict[str, Any]:
    checks = [c["code"] for c in CHECKLIST]
    if row.relocated:
        checks.append(RELOCATED_CHECK["code"])
    readiness = row.readiness_at_exit or {}
    if row.exit_override or readiness.get("result") is False:
        checks.append(OVERRIDE_CHECK["code"])
    return {"household_id": row.household_id, "township_code": row.township_code, "township_name": row.township_name,
            "village_code": row.village_code, "village_name": row.village_name, "head_name": row.head_name,
            "head_id_number": row.head_masked_id,  # masked in the ledger already
            "population": row.population, "exit_date": row.exit_date, "categories": row.categories or [],
            "relocated": row.relocated, "exit_override": bool(row.exit_override), "checks": checks}


EXPORT_COLUMNS = [("household_id", "户编号"), ("township_name", "乡镇"), ("village_name", "村"),
                  ("head_name", "户主姓名"), ("head_id_number", "户主身份证号（脱敏）"), ("population", "人口"),
                  ("exit_date", "脱贫日期"), ("relocated", "易地搬迁"), ("exit_override", "强制退出"),
                  ("checks", "核查事项")]


def _cells(item: dict) -> list:
    return [", ".join(item[k]) if isinstance(item[k], list) else
            ("是" if item[k] is True else "否" if item[k] is False else item[k]) for k, _ in EXPORT_COLUMNS]


def sample_csv(sample: dict) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([f"{zh} ({en})" for en, zh in EXPORT_COLUMNS])
    for item in sample["items"]:
        writer.writerow(csv_row(_cells(item)))  # names like "=cmd|..." are neutralised (OWASP CSV injection)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")  # BOM: Excel opens UTF-8 Chinese correctly


def sample_xlsx(sample: dict) -> bytes:
    from openpyxl import Workbook

    from shared.spreadsheet import append_xlsx_row
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = f"抽样 {sample['year']}"
    sheet.append([f"{zh} ({en})" for en, zh in EXPORT_COLUMNS])
    for item in sample["items"]:
        append_xlsx_row(sheet, _cells(item))  # text cells typed as strings, never formulas
    checks = workbook.create_sheet("核查事项 checklist")
    checks.append(["code", "核查事项", "check", "依据 source"])
    for c in sample["checklist"]:
        checks.append([c["code"], c["zh"], c["en"], c["source"]])
    meta = workbook.create_sheet("说明 method")
    for key in ("area", "year", "seed", "n_requested", "n", "population", "method"):
        append_xlsx_row(meta, [key, str(sample[key])])  # the seed is the caller's text
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
