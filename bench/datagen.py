"""Realistic household snapshots for benchmarks and property tests (deterministic per seed)."""
from __future__ import annotations

import datetime as dt
import random
from typing import Any

try:
    from shared.idcard import make_id_number
except ImportError:  # pragma: no cover - the registry engineer's module may not exist yet
    _WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)

    def make_id_number(region6: str, birth_date: dt.date, seq3: int | str) -> str:
        first17 = f"{region6}{birth_date:%Y%m%d}{int(seq3):03d}"
        check = "10X98765432"[sum(int(d) * w for d, w in zip(first17, _WEIGHTS)) % 11]
        return first17 + check

STATUSES = ["registered"] * 6 + ["exited"] * 3 + ["monitored", "returned", "candidate", "removed"]
TOWNSHIPS = [("360703105", "隆木乡", ["新村村", "石坑村"]), ("360703102", "坪市乡", ["李岭村", "示例村"]),
             ("360703108", "大坪乡", ["上洛村"]), ("360703110", "麻双乡", ["花潭村"]), ("360703101", "唐江镇", ["卢屋村"])]
STAGES = ["preschool", "primary", "junior", "senior", "vocational", "university"]
PLACES = ["other_province", "in_province_cross_county", "in_district_park", "local"]


def _person(rng: random.Random, region: str, index: int, relation: str, birth: dt.date) -> dict[str, Any]:
    age = 2020 - birth.year
    disabled = rng.random() < 0.08
    sequence = rng.randint(1, 999)  # GB 11643: an odd sequence number is a man
    person: dict[str, Any] = {
        "id": f"m{index}", "name": f"成员{index}", "sex": "M" if sequence % 2 else "F", "birth_date": birth.isoformat(),
        "id_number": make_id_number(region[:6].ljust(6, "0"), birth, sequence),
        "relation": relation, "labour_capacity": "full" if 18 <= age < 60 else rng.choice(["weak", "none"]),
        "health": "disabled" if disabled else rng.choice(["healthy"] * 6 + ["chronic", "serious_illness"]),
        "disability": {"grade": rng.randint(1, 4), "kind": "physical"} if disabled else None,
        "self_care": rng.choice(["able"] * 5 + ["partial_loss", "full_loss"]),
        "bedridden": rng.random() < 0.03, "student": None, "employment": None, "trainings": [], "deceased": False,
    }
    if 3 <= age <= 22:
        stage = STAGES[min(max((age - 3) // 3, 0), len(STAGES) - 1)]
        person["student"] = {"stage": stage, "boarding": rng.random() < 0.4, "special_school": False,
                             "school": "示例学校", "major_group": None, "year_of_study": rng.randint(1, 3),
                             "admitted_this_year": rng.random() < 0.3, "out_of_province": rng.random() < 0.3}
    elif 18 <= age < 60 and rng.random() < 0.6:
        public = rng.random() < 0.1
        person["employment"] = {
            "place": rng.choice(PLACES), "monthly_wage": f"{rng.randint(600, 6000)}.00",
            "contract_months": rng.choice([0, 3, 6, 12, 24]), "months_worked": rng.randint(0, 12),
            "workshop": rng.random() < 0.1,
            "public_post": {"monthly_pay": f"{rng.randint(500, 1200)}.00"} if public else None,
        }
        if rng.random() < 0.2:
            person["trainings"] = [{"name": "家具技能", "days": rng.randint(1, 30), "certified": True, "year": 2019}]
    return person


def generate_household(rng: random.Random, index: int, region: str = "360703") -> dict[str, Any]:
    township_code, township_name, villages = rng.choice(TOWNSHIPS)
    village_name = rng.choice(villages)
    status = rng.choice(STATUSES)
    categories = sorted(set(rng.sample(["dibao", "marginal", "relocated", "tekun_dispersed", "zero_employment"],
                                       k=rng.choice([0, 0, 0, 1, 1, 2]))))
    if status == "monitored" and rng.random() < 0.5:
        categories = sorted(set(categories) | {"marginal"})
    head_birth = dt.date(rng.randint(1940, 1990), rng.randint(1, 12), rng.randint(1, 28))
    members = [_person(rng, region, 1, "head", head_birth)]
    for number in range(2, rng.randint(1, 6) + 1):
        relation = rng.choice(["spouse", "child", "child", "parent"])
        birth = dt.date(rng.randint(1940, 2018), rng.randint(1, 12), rng.randint(1, 28))
        members.append(_person(rng, region, number, relation, birth))
    grade = rng.choice(["A", "A", "B", "C", "D"])
    return {
        "id": f"hh-{index:07d}", "version": rng.randint(1, 9), "region_code": region,
        "village": {"code": f"{township_code}{rng.randint(200, 299)}", "name": village_name,
                    "township_code": township_code, "township_name": township_name,
                    "is_poor_village": rng.random() < 0.3, "is_deep_poverty_village": village_name in ("新村村", "李岭村", "上洛村", "花潭村")},
        "status": status, "identified_year": rng.choice([2014, 2015, 2016, None]),
        "exit_date": f"{rng.randint(2016, 2019)}-12-01" if status in ("exited", "monitored") else None,
        "categories": categories, "dibao_class": rng.choice(["A1", "A2", "B", "C1", "C2"]) if "dibao" in categories else None,
        "poverty_causes": rng.sample(["illness", "disability", "schooling", "lack_of_capital", "lack_of_labour"], k=2),
        "income": {"year": 2019, "per_capita_net": f"{rng.randint(1500, 12000)}.{rng.randint(0, 99):02d}"},
        "guarantees": {name: rng.random() < 0.9 for name in
                       ("food", "clothing", "compulsory_education", "basic_medical", "housing_safety", "drinking_water")},
        "housing": {"safety_grade": grade, "no_house": False, "renovated": rng.random() < 0.2,
                    "planned_work": {"C": "repair", "D": "rebuild"}.get(grade)},
        "water": {"in_tap_coverage": rng.random() < 0.8, "planned_well": rng.choice([None, "deep", "hand_pump"])},
        "relocation": {"relocated": "relocated" in categories, "moved_in": rng.random() < 0.8, "site_type": None},
        "production": {
            "crops_mu": rng.randint(0, 8), "poultry": rng.choice([0, 5, 15, 40]), "rabbits": rng.choice([0, 12]),
            "pigs_sheep": rng.randint(0, 4), "beef_cattle": rng.randint(0, 6), "four_fish_mu": rng.randint(0, 2),
            "special_aquaculture_mu": rng.randint(0, 2), "bee_boxes": rng.randint(0, 5), "fruit_new_mu": rng.randint(0, 2),
            "fruit_tending_mu": rng.randint(0, 2), "camellia_new_mu": rng.randint(0, 2),
            "camellia_tending_mu": rng.randint(0, 3), "double_rice_mu": rng.randint(0, 12),
            "oil_crops_mu": rng.randint(0, 3), "herbs_mu": rng.randint(0, 3), "special_livestock": rng.choice([0, 5, 20]),
            "land_rented_out": {"farmland_mu": rng.randint(0, 3), "mountain_mu": rng.randint(0, 5)},
            "machinery": [{"category": rng.choice(["tiller", "harvester", "pump", "sprayer"]),
                           "price": f"{rng.randint(2000, 25000)}.00", "national_subsidy": f"{rng.randint(0, 3000)}.00"}
                          for _ in range(rng.choice([0, 0, 1, 2, 4]))],
        },
        "members": members,
    }


def generate_households(n: int, seed: int = 0, region: str = "360703") -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [generate_household(rng, index, region) for index in range(n)]
