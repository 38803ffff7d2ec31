"""Generated ledgers (deterministic per seed) for tests, benchmarks and demos."""
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


def generate_ledger(rows: int, *, seed: int = 7, status: str = "候选") -> tuple[list[str], list[list[str]]]:
    """About ``rows`` person rows (whole households), every one valid."""
    rng = random.Random(seed)
    used: dict[date, int] = defaultdict(int)
    keys = [key for key, _, _ in COLUMNS]

    def person_number(born: date) -> tuple[str, str]:
        used[born] += 1
        sequence = used[born] * 2 - 1 + rng.randint(0, 1)  # parity picks the sex; unique per birth date
        if sequence > 999:
            return person_number(born + timedelta(days=1))
        return make_id_number("360703", born, sequence), "M" if sequence % 2 else "F"

    table: list[list[str]] = []
    household = 0
    while len(table) < rows:
        household += 1
        township_code, township, village_code, village = VILLAGES[household % len(VILLAGES)]
        size = min(rng.randint(1, 6), rows - len(table))
        hid = f"LZ{household:07d}"
        common = {"household_id": hid, "region_code": "360703", "township_code": township_code,
                  "township_name": township, "village_code": village_code, "village_name": village,
                  "is_poor_village": "是", "is_deep_poverty_village": "否", "status": status,
                  "poverty_causes": "、".join(rng.sample(CAUSES, rng.randint(1, 2))), "income_year": "2019",
                  "per_capita_net": f"{rng.randint(1800, 5200)}.00", "g_food": "是", "g_clothing": "是",
                  "g_compulsory_education": "是", "g_basic_medical": "是",
                  "g_housing_safety": rng.choice(["是", "否"]), "g_drinking_water": "是",
                  "housing_grade": rng.choice(["A", "B", "C"]), "relocated": "否", "moved_in": "否"}
        members = []
        for index in range(size):
            relation = "户主" if index == 0 else ("配偶" if index == 1 else "子女")
            born = (date(1950, 1, 1) + timedelta(days=rng.randint(0, 40 * 365)) if index < 2
                    else date(1995, 1, 1) + timedelta(days=rng.randint(0, 20 * 365)))
            number, sex = person_number(born)
            name = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)
            members.append({"name": name, "id_number": number, "sex": "男" if sex == "M" else "女",
                            "birth_date": born.isoformat(), "relation": relation,
                            "labour_capacity": "普通劳动力" if index < 2 else "无劳动力",
                            "health": rng.choice(["健康"] * 5 + ["长期慢性病"]), "deceased": "否"})
        head = members[0]
        for member in members:
            cells = {**common, "head_name": head["name"], "head_id_number": head["id_number"], **member}
            table.append([cells.get(key, "") for key in keys])
    return HEADER, table
