"""Generated ledgers (deterministic per seed) for tests, benchmarks and demos.

Ledgers of different seeds can be imported into one registry: household numbers carry the seed
(``LZ07-000001`` for seed 7), and ID numbers are drawn from a region code and a block of sequence
numbers that the seed picks (18 Ganzhou county codes × 100 blocks), so seeds that differ modulo
1,800 never share an ID number. The demo data's region code (360782) is not among them.
"""
from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, timedelta

from services.registry.imports.ledger import COLUMNS, HEADER
from shared.idcard import make_id_number

VILLAGES = [("360703105", "隆木乡", "360703105201", "新村村"), ("360703105", "隆木乡", "360703105202", "石坑村"),
            ("360703102", "坪市乡", "360703102201", "李岭村"), ("360703110", "麻双乡", "360703110201", "花潭村")]
SURNAMES = "钟刘李王陈赖黄谢曾罗"
GIVEN = "大小秀明红华英军平国建兰芳伟强"
CAUSES = ["因病", "因残", "因学", "缺资金", "缺技术", "缺劳力"]
# Ganzhou's county-level codes (赣州市), for the ID numbers' region part.
ID_REGIONS = ("360703", "360702", "360704", "360722", "360723", "360724", "360725", "360726", "360727",
              "360728", "360729", "360730", "360731", "360732", "360733", "360734", "360735", "360781")
SEQUENCE_BLOCKS = 100  # ten sequence numbers (five per sex) per block and birth date
PER_SEX = 5


def household_number(seed: int, index: int) -> str:
    return f"LZ{seed:02d}-{index:06d}"


def id_region_and_block(seed: int) -> tuple[str, int]:
    return ID_REGIONS[seed % len(ID_REGIONS)], (seed // len(ID_REGIONS)) % SEQUENCE_BLOCKS


def _schooling_or_work(rng: random.Random, index: int, born: date) -> dict[str, str]:
    """A school stage for children of school age in 2020, migrant work for some adults."""
    age = 2020 - born.year
    if index >= 2 and 6 <= age <= 17:
        stage = "小学" if age <= 11 else ("初中" if age <= 14 else "高中")
        return {"student_stage": stage, "student_boarding": "是" if age >= 12 else "否"}
    if index < 2 and age < 60 and rng.random() < 0.4:
        return {"employment_place": rng.choice(["省外", "省内县外", "本地"]),
                "employment_monthly_wage": f"{rng.randint(20, 45) * 100}.00",
                "employment_months_worked": str(rng.randint(3, 12))}
    return {}


def generate_ledger(rows: int, *, seed: int = 7, status: str = "候选") -> tuple[list[str], list[list[str]]]:
    """About ``rows`` person rows (whole households), every one valid."""
    rng = random.Random(seed)
    used: dict[tuple[date, str], int] = defaultdict(int)
    keys = [column.key for column in COLUMNS]
    region, block = id_region_and_block(seed)

    def person_number(born: date) -> tuple[str, str, date]:
        sex = rng.choice("MF")
        while used[born, sex] >= PER_SEX:  # this birth date's numbers are taken: the next free day
            born += timedelta(days=1)
        slot = used[born, sex]
        used[born, sex] += 1
        sequence = block * 10 + slot * 2 + (1 if sex == "M" else 0)  # odd = male (GB 11643)
        return make_id_number(region, born, sequence), sex, born

    table: list[list[str]] = []
    household = 0
    while len(table) < rows:
        household += 1
        township_code, township, village_code, village = VILLAGES[household % len(VILLAGES)]
        size = min(rng.randint(1, 6), rows - len(table))
        hid = household_number(seed, household)
        common = {"household_id": hid, "region_code": "360703", "township_code": township_code,
                  "township_name": township, "village_code": village_code, "village_name": village,
                  "is_poor_village": "是", "is_deep_poverty_village": "否", "status": status,
                  "poverty_causes": "、".join(rng.sample(CAUSES, rng.randint(1, 2))), "income_year": "2019",
                  "per_capita_net": f"{rng.randint(1800, 5200)}.00", "g_food": "是", "g_clothing": "是",
                  "g_compulsory_education": "是", "g_basic_medical": "是",
                  "g_housing_safety": rng.choice(["是", "否"]), "g_drinking_water": "是",
                  "housing_grade": rng.choice(["A", "B", "C"]), "relocated": "否", "moved_in": "否",
                  "crops_mu": f"{rng.randint(0, 12) / 2:g}", "pigs_sheep": str(rng.randint(0, 3)),
                  "beef_cattle": str(rng.choice([0, 0, 0, 2, 4])), "water_in_tap": rng.choice(["是", "是", "否"])}
        members = []
        for index in range(size):
            relation = "户主" if index == 0 else ("配偶" if index == 1 else "子女")
            born = (date(1950, 1, 1) + timedelta(days=rng.randint(0, 40 * 365)) if index < 2
                    else date(1995, 1, 1) + timedelta(days=rng.randint(0, 20 * 365)))
            number, sex, born = person_number(born)
            name = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)
            members.append({"name": name, "id_number": number, "sex": "男" if sex == "M" else "女",
                            "birth_date": born.isoformat(), "relation": relation,
                            "labour_capacity": "普通劳动力" if index < 2 else "无劳动力",
                            "health": rng.choice(["健康"] * 5 + ["长期慢性病"]), "deceased": "否",
                            "self_care": "能自理", **_schooling_or_work(rng, index, born)})
        head = members[0]
        for member in members:
            cells = {**common, "head_name": head["name"], "head_id_number": head["id_number"], **member}
            table.append([cells.get(key, "") for key in keys])
    return HEADER, table
