"""A small demo district built from the example shapes: a few villages, ~200 households."""
from __future__ import annotations

import copy
import json
import random
from datetime import date, timedelta
from pathlib import Path

from shared.idcard import make_id_number

EXAMPLES = Path(__file__).resolve().parent / "examples"

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


def _templates() -> list[dict]:
    return [json.loads(p.read_text())["household"] for p in sorted(EXAMPLES.glob("*.json"))]


def demo_households(count: int = 200, seed: int = 20200630) -> list[tuple[str, dict]]:
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
        households.append((f"hh-demo-{index + 1:04d}", body))
    return households
