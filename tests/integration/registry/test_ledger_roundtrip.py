"""Export → import round-trips every snapshot field (issue 16), on SQLite and PostgreSQL.

Hypothesis generates valid households (every field of shared/snapshot.py, lists included); they are
registered through the API in one registry, exported as XLSX and as CSV, each export is imported into
an empty second registry, and the second registry's snapshots must equal the first's in every field
but the version (ids are kept: 户编号 and 成员编号 are ledger columns).
"""
from __future__ import annotations

from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from services.registry.app import create_app
from services.registry.tables import metadata
from shared.auth import mint_token
from shared.config import RegistrySettings
from shared.idcard import make_id_number
from tests.helpers import running_app

EXAMPLES = 25
TEXT = st.text(alphabet="钟刘李王陈村乡镇学校农机耕整地abcXYZ0123456789", min_size=1, max_size=8)
MONEY = st.decimals(min_value=0, max_value=99999, places=2).map(str)
QUANTITY = st.decimals(min_value=0, max_value=500, places=2).map(str)
COUNT = st.integers(min_value=0, max_value=200)
OPT_BOOL = st.none() | st.booleans()


def optional(strategy):
    return st.none() | strategy


def objects(**fields):
    return st.fixed_dictionaries(fields)


MACHINERY = objects(category=TEXT, price=MONEY, national_subsidy=MONEY)
TRAINING = objects(name=TEXT, days=COUNT, certified=st.booleans(), year=optional(st.integers(2010, 2020)),
                   subsidy_paid=st.booleans())
STUDENT = objects(stage=st.sampled_from(["preschool", "primary", "junior", "senior", "vocational", "university",
                                         "graduate"]),
                  boarding=st.booleans(), special_school=st.booleans(), school=optional(TEXT),
                  major_group=optional(TEXT), year_of_study=optional(st.integers(1, 6)),
                  admitted_this_year=st.booleans(), out_of_province=st.booleans(),
                  entry_year=optional(st.integers(2010, 2020)),
                  need_level=optional(st.sampled_from([1, 2, 3])), vocational_tuition=optional(MONEY),
                  loan_requested=optional(MONEY))
EMPLOYMENT = objects(place=optional(st.sampled_from(["other_province", "in_province_cross_county",
                                                     "in_district_park", "local"])),
                     monthly_wage=optional(MONEY), contract_months=COUNT, months_worked=COUNT, workshop=st.booleans(),
                     public_post=optional(objects(monthly_pay=MONEY)), key_enterprise_new_hire=st.booleans(),
                     hired_year=optional(st.integers(2015, 2020)), agency_referral=st.booleans(),
                     consecutive_months=optional(COUNT), self_employed_months=optional(COUNT))
PERSON = objects(
    name=TEXT, labour_capacity=st.sampled_from(["full", "skilled", "weak", "lost", "none"]),
    health=st.sampled_from(["healthy", "chronic", "serious_illness", "disabled"]),
    disability=optional(objects(grade=st.integers(1, 4), kind=st.sampled_from(
        ["physical", "visual", "hearing", "speech", "intellectual", "mental", "multiple"]))),
    self_care=st.sampled_from(["able", "partial_loss", "full_loss"]), bedridden=st.booleans(),
    student=optional(STUDENT), employment=optional(EMPLOYMENT), trainings=st.lists(TRAINING, max_size=2),
    deceased=st.booleans(), date_of_death=optional(st.dates(date(2014, 1, 1), date(2020, 6, 30))),
    rehab_condition=optional(st.sampled_from(["cerebral_palsy", "deaf", "autism",
                                                                      "intellectual"])),
    chronic_outpatient_cost=optional(MONEY), dibao_covered=OPT_BOOL,
    tekun=optional(st.sampled_from(["dispersed", "concentrated"])),
    monitoring=st.lists(st.sampled_from(["illness", "disability", "accident", "epidemic", "income_drop",
                                         "rigid_expense"]), unique=True, max_size=2),
    born=st.dates(date(1930, 1, 1), date(2019, 12, 31)),
    relation=st.sampled_from(["spouse", "child", "parent", "other"]))
COVID = objects(vegetables_mu=QUANTITY, pomelo_kg=QUANTITY, navel_orange_kg=QUANTITY, poultry=COUNT,
                fish_mu=QUANTITY, honey_kg=QUANTITY, rabbits=COUNT, bamboo_rats=COUNT)
FACILITY = objects(land_rented_in_farmland_mu=QUANTITY, land_rented_in_mountain_mu=QUANTITY,
                   facility_agriculture_mu=QUANTITY, herbs_mu=QUANTITY, reishi_large_bags=COUNT,
                   reishi_small_bags=COUNT, processing_equipment_price=MONEY, aquaculture_facility_m2=QUANTITY)
PRODUCTION = objects(
    **{name: QUANTITY for name in ("crops_mu", "four_fish_mu", "special_aquaculture_mu", "fruit_new_mu",
                                   "fruit_tending_mu", "camellia_new_mu", "camellia_tending_mu", "double_rice_mu",
                                   "oil_crops_mu", "herbs_mu")},
    **{name: COUNT for name in ("poultry", "rabbits", "pigs_sheep", "beef_cattle", "bee_boxes", "special_livestock")},
    land_rented_out=objects(farmland_mu=QUANTITY, mountain_mu=QUANTITY), machinery=st.lists(MACHINERY, max_size=3),
    covid_unsold=optional(COVID), relocated_facility=optional(FACILITY))
HOUSEHOLD = objects(
    region_code=st.just("360703"),
    village=optional(objects(code=st.sampled_from(["360703105201", "360703102201"]), name=TEXT, township_code=
                             st.just("360703105"), township_name=TEXT, is_poor_village=st.booleans(),
                             is_deep_poverty_village=st.booleans())),
    status=st.sampled_from(["candidate", "registered", "exited", "monitored", "returned", "removed"]),
    identified_year=optional(st.integers(2014, 2020)), exit_date=optional(st.dates(date(2016, 1, 1),
                                                                                   date(2020, 12, 31)).map(str)),
    # dibao / tekun_* follow from the members' flags (shared/person_categories.py).
    categories=st.lists(st.sampled_from(["marginal", "relocated", "zero_employment"]), unique=True, max_size=3),
    dibao_class=optional(st.sampled_from(["A1", "A2", "B", "C1", "C2"])),
    poverty_causes=st.lists(st.sampled_from(["illness", "disability", "schooling", "disaster", "lack_of_land",
                                             "lack_of_water", "lack_of_skills", "lack_of_labour", "lack_of_capital",
                                             "poor_transport", "low_motivation"]), unique=True, max_size=3),
    income=optional(objects(year=st.integers(2014, 2020), per_capita_net=MONEY)),
    guarantees=objects(**{name: OPT_BOOL for name in ("food", "clothing", "compulsory_education", "basic_medical",
                                                      "housing_safety", "drinking_water", "income_source",
                                                      "road_access", "electricity", "television")}),
    housing=objects(safety_grade=optional(st.sampled_from("ABCD")), no_house=st.booleans(), renovated=st.booleans(),
                    planned_work=optional(st.sampled_from(["rebuild", "repair"]))),
    water=objects(in_tap_coverage=OPT_BOOL, planned_well=optional(st.sampled_from(["deep", "hand_pump"]))),
    relocation=objects(relocated=st.booleans(), moved_in=st.booleans(),
                       site_type=optional(st.sampled_from(["urban_park", "town", "rural"]))),
    production=PRODUCTION, medical_out_of_pocket_ytd=optional(MONEY), disaster_this_year=st.booleans(),
    members=st.lists(PERSON, min_size=1, max_size=4))


def households_of(drawn: list[dict]) -> list[dict]:
    """Bodies for POST /v1/households: one head each, unique ID numbers, sex and birth date from them."""
    sequence = 0
    bodies = []
    for household in drawn:
        members = []
        for index, person in enumerate(household["members"]):
            person = dict(person)
            born = person.pop("born")
            sequence += 1
            number = make_id_number("360703", born, sequence)
            members.append({**person, "id_number": number, "birth_date": born.isoformat(),
                            "sex": "M" if sequence % 2 else "F",
                            "relation": "head" if index == 0 else person["relation"],
                            "deceased": False if index == 0 else person["deceased"],
                            "date_of_death": (person["date_of_death"].isoformat() if index and person["deceased"]
                                              and person["date_of_death"] and person["date_of_death"] >= born else None)})
        bodies.append({**household, "members": members})
    return bodies


def draw_examples() -> list[list[dict]]:
    found: list[list[dict]] = []

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(HOUSEHOLD, min_size=1, max_size=4))
    def collect(drawn):
        found.append(households_of(drawn))
    collect()
    return found


def leaves(value) -> int:
    if isinstance(value, dict):
        return sum(leaves(v) for v in value.values())
    if isinstance(value, list):
        return sum(leaves(v) for v in value) if value else 1
    return 1


async def empty(app) -> None:
    async with app.state.sessionmaker() as session:
        for table in reversed(metadata.sorted_tables):
            await session.execute(delete(table))
        await session.commit()


async def listed(client) -> list[dict]:
    items, cursor = [], None
    while True:
        page = (await client.get("/v1/households", params={"limit": 200, **({"cursor": cursor} if cursor else {})}
                                 )).json()
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return sorted(items, key=lambda h: h["id"])


async def test_export_import_round_trips_every_snapshot_field(registry, databases, tmp_path):
    examples = draw_examples()
    settings_b = RegistrySettings(var_dir=tmp_path, database_url=await databases.url("registry_b"),
                                  kafka_bootstrap="127.0.0.1:1", log_json=False)
    target_app = create_app(settings_b)
    households = fields = 0
    async with running_app(target_app, mint_token(settings_b, "admin")) as target:
        for number, bodies in enumerate(examples):
            await empty(registry.app)
            for body in bodies:
                created = await registry.post("/v1/households", json=body, headers=registry.admin)
                assert created.status_code == 201, (number, created.text[:800])
            source = await listed_as_admin(registry)
            for fmt in ("xlsx", "csv"):
                await empty(target_app)
                exported = await registry.get("/v1/exports/households", params={"format": fmt},
                                              headers=registry.admin)
                assert exported.status_code == 200
                imported = await target.post("/v1/imports", files={"file": (f"ledger.{fmt}", exported.content,
                                                                            "application/octet-stream")})
                assert imported.status_code == 201, (number, fmt, imported.text[:1500])
                assert imported.json()["warnings"] == []
                again = await listed(target)
                assert [h["id"] for h in again] == [h["id"] for h in source]
                for before, after in zip(source, again):
                    before, after = dict(before, version=None), dict(after, version=None)
                    assert after == before, (number, fmt, _differences(before, after))
                    fields += leaves(before)
                households += len(source)
    print(f"\nround trip: {len(examples)} examples, {households} household imports, {fields} fields compared")
    assert len(examples) == EXAMPLES and households >= 2 * EXAMPLES


async def listed_as_admin(client) -> list[dict]:
    items, cursor = [], None
    while True:
        page = (await client.get("/v1/households", headers=client.admin,
                                 params={"limit": 200, **({"cursor": cursor} if cursor else {})})).json()
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return sorted(items, key=lambda h: h["id"])


def _differences(before, after, prefix=""):
    if isinstance(before, dict) and isinstance(after, dict):
        return [d for k in sorted(set(before) | set(after))
                for d in _differences(before.get(k), after.get(k), f"{prefix}{k}.")]
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [d for i, (b, a) in enumerate(zip(before, after)) for d in _differences(b, a, f"{prefix}{i}.")]
    return [] if before == after else [(prefix.rstrip("."), before, after)]


