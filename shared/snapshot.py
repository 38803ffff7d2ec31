"""Household snapshot (API.md "Household snapshot"), as pydantic v2 models.

Two flavours built from one definition so they can never drift apart:

* the default models (`Household`, `Person`, ...) ignore unknown fields; they read
  `jz.registry.v1` events and the body of `POST /v1/evaluate`;
* `HouseholdCreate` is the body of the registry's write endpoints: no `id` /
  `version`, member ids optional, and every nested model forbids unknown fields
  (422). It is derived with `strict_variant()`, which rebuilds a model tree with
  `extra="forbid"` at every level.

A few optional fields go beyond API.md ("a service may offer more") because
PROGRAMS.md programmes need facts the contract does not carry; they are marked
"extension" and default to "absent", so a snapshot that follows API.md exactly
evaluates as if those facts were not reported.
"""
from __future__ import annotations

import types
import typing
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from shared.bounds import LedgerDate, Name, NonNegativeMoney, Year
from shared.money import ZERO, Money, Quantity

HouseholdStatus = Literal["candidate", "registered", "exited", "monitored", "returned", "removed"]
Category = Literal["dibao", "tekun_dispersed", "tekun_concentrated", "marginal", "relocated", "zero_employment"]
DibaoClass = Literal["A1", "A2", "B", "C1", "C2"]
PovertyCause = Literal[
    "illness", "disability", "schooling", "disaster", "lack_of_land", "lack_of_water",
    "lack_of_skills", "lack_of_labour", "lack_of_capital", "poor_transport", "low_motivation",
]
SafetyGrade = Literal["A", "B", "C", "D"]
PlannedWork = Literal["rebuild", "repair"]
WellKind = Literal["deep", "hand_pump"]
SiteType = Literal["urban_park", "town", "rural"]
Sex = Literal["M", "F"]
Relation = Literal["head", "spouse", "child", "parent", "other"]
LabourCapacity = Literal["full", "skilled", "weak", "lost", "none"]
Health = Literal["healthy", "chronic", "serious_illness", "disabled"]
DisabilityKind = Literal["physical", "visual", "hearing", "speech", "intellectual", "mental", "multiple"]
SelfCare = Literal["able", "partial_loss", "full_loss"]
SchoolStage = Literal["preschool", "primary", "junior", "senior", "vocational", "university", "graduate"]
WorkPlace = Literal["other_province", "in_province_cross_county", "in_district_park", "local"]
RehabCondition = Literal["cerebral_palsy", "deaf", "autism", "intellectual"]
TekunSupport = Literal["dispersed", "concentrated"]
# Risk causes of monitoring (API.md "Added for the next capabilities", POST /v1/monitoring/leads).
RiskCause = Literal[PovertyCause, "accident", "epidemic", "income_drop", "rigid_expense"]

# Bounded so that a count fits every consumer's integer column (a 10**20 count would dead-letter there).
Count = Annotated[int, Field(ge=0, le=1_000_000_000)]


def _zero_quantity() -> Decimal:
    return Decimal(0)


def _zero_money() -> Decimal:
    return ZERO
# Clear (registry input, admin views) or masked (events and every other output: first 6, last 4;
# shared.personal_data). The registry checks a clear number's check digit itself.
ID_NUMBER_PATTERN = r"^\d{6}(\d{8}|\*{8})\d{3}[\dXx]$"


class SnapshotModel(BaseModel):
    """Base of every snapshot model: unknown fields are ignored (evaluate, events).

    Every model's JSON schema (hence both services' /openapi.json) carries each field's
    description "中文 / English" from shared/snapshot_descriptions.py. A schema hook rather than
    `json_schema_extra`, because subclasses set their own `json_schema_extra` (examples) in
    model_config, which would replace a callable inherited from here.
    """

    model_config = ConfigDict(extra="ignore", frozen=False)

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema, handler):
        from shared.snapshot_descriptions import description  # the texts live apart from the fields

        json_schema = handler(core_schema)
        target = handler.resolve_ref_schema(json_schema)
        for name, prop in target.get("properties", {}).items():
            owner = next((base.__name__ for base in reversed(cls.__mro__)
                          if issubclass(base, SnapshotModel) and name in base.__dict__.get("__annotations__", {})),
                         cls.__name__)
            text = description(owner, name)
            if text:
                prop["description"] = text
        return json_schema


class Village(SnapshotModel):
    code: Name
    name: Name = ""
    township_code: Name = ""
    township_name: Name = ""
    is_poor_village: bool = False
    is_deep_poverty_village: bool = False


class Income(SnapshotModel):
    year: Year
    per_capita_net: Money


class RigidExpenses(SnapshotModel):
    """Rigid expenses of one year (防止返贫监测: illness, disability, schooling, disaster, accident), in yuan.

    Extension (issue 13): benefits' `monitoring_range` compares their total with the household's net
    income; a snapshot without them is judged on income alone.
    """

    year: Year | None = None
    medical: NonNegativeMoney = Field(default_factory=_zero_money)
    schooling: NonNegativeMoney = Field(default_factory=_zero_money)
    disaster: NonNegativeMoney = Field(default_factory=_zero_money)
    accident: NonNegativeMoney = Field(default_factory=_zero_money)
    disability_care: NonNegativeMoney = Field(default_factory=_zero_money)

    def total(self) -> Decimal:
        return self.medical + self.schooling + self.disaster + self.accident + self.disability_care


class Guarantees(SnapshotModel):
    """两不愁三保障 (+ Guangxi 八有一超 items). None = not verified, which fails an exit test."""

    food: bool | None = None
    clothing: bool | None = None
    compulsory_education: bool | None = None
    basic_medical: bool | None = None
    housing_safety: bool | None = None
    drinking_water: bool | None = None
    income_source: bool | None = None
    road_access: bool | None = None
    electricity: bool | None = None
    television: bool | None = None


class Housing(SnapshotModel):
    safety_grade: SafetyGrade | None = None
    no_house: bool = False
    renovated: bool = False
    planned_work: PlannedWork | None = None


class Water(SnapshotModel):
    in_tap_coverage: bool | None = None
    planned_well: WellKind | None = None


class Relocation(SnapshotModel):
    relocated: bool = False
    moved_in: bool = False
    site_type: SiteType | None = None


class LandRentedOut(SnapshotModel):
    farmland_mu: Quantity = Field(default_factory=_zero_quantity)
    mountain_mu: Quantity = Field(default_factory=_zero_quantity)


class Machinery(SnapshotModel):
    category: Name
    price: NonNegativeMoney
    national_subsidy: NonNegativeMoney = Field(default_factory=_zero_money)


class CovidUnsold(SnapshotModel):
    """Extension: 2020 COVID unsold / damaged produce (001 L208-L214)."""

    vegetables_mu: Quantity = Field(default_factory=_zero_quantity)
    pomelo_kg: Quantity = Field(default_factory=_zero_quantity)
    navel_orange_kg: Quantity = Field(default_factory=_zero_quantity)
    poultry: Count = 0
    fish_mu: Quantity = Field(default_factory=_zero_quantity)
    honey_kg: Quantity = Field(default_factory=_zero_quantity)
    rabbits: Count = 0
    bamboo_rats: Count = 0


class RelocatedFacility(SnapshotModel):
    """Extension: relocated households' land and facility agriculture (001 L267-L272)."""

    land_rented_in_farmland_mu: Quantity = Field(default_factory=_zero_quantity)
    land_rented_in_mountain_mu: Quantity = Field(default_factory=_zero_quantity)
    facility_agriculture_mu: Quantity = Field(default_factory=_zero_quantity)
    herbs_mu: Quantity = Field(default_factory=_zero_quantity)
    reishi_large_bags: Count = 0
    reishi_small_bags: Count = 0
    processing_equipment_price: NonNegativeMoney = Field(default_factory=_zero_money)
    aquaculture_facility_m2: Quantity = Field(default_factory=_zero_quantity)


class Production(SnapshotModel):
    crops_mu: Quantity = Field(default_factory=_zero_quantity)
    poultry: Count = 0
    rabbits: Count = 0
    pigs_sheep: Count = 0
    beef_cattle: Count = 0
    four_fish_mu: Quantity = Field(default_factory=_zero_quantity)
    special_aquaculture_mu: Quantity = Field(default_factory=_zero_quantity)
    bee_boxes: Count = 0
    fruit_new_mu: Quantity = Field(default_factory=_zero_quantity)
    fruit_tending_mu: Quantity = Field(default_factory=_zero_quantity)
    camellia_new_mu: Quantity = Field(default_factory=_zero_quantity)
    camellia_tending_mu: Quantity = Field(default_factory=_zero_quantity)
    double_rice_mu: Quantity = Field(default_factory=_zero_quantity)
    oil_crops_mu: Quantity = Field(default_factory=_zero_quantity)
    herbs_mu: Quantity = Field(default_factory=_zero_quantity)
    special_livestock: Count = 0
    land_rented_out: LandRentedOut = Field(default_factory=LandRentedOut)
    machinery: list[Machinery] = Field(default_factory=list)
    covid_unsold: CovidUnsold | None = None
    relocated_facility: RelocatedFacility | None = None


class Disability(SnapshotModel):
    grade: int = Field(ge=1, le=4)
    kind: DisabilityKind


class Student(SnapshotModel):
    stage: SchoolStage
    boarding: bool = False
    special_school: bool = False
    school: Name | None = None
    major_group: Name | None = None
    year_of_study: int | None = Field(default=None, ge=1, le=20)
    admitted_this_year: bool = False
    out_of_province: bool = False
    # Extension: the year the student entered the current school; the vocational tuition rate depends on
    # it (students who entered before autumn 2018 keep the old 850 rate, 001 L625).
    entry_year: Year | None = None
    # Extensions (001 L609-L649): figures the school or the aid office supplies.
    need_level: Literal[1, 2, 3] | None = None
    vocational_tuition: NonNegativeMoney | None = None
    loan_requested: NonNegativeMoney | None = None


class PublicPost(SnapshotModel):
    monthly_pay: NonNegativeMoney


class Employment(SnapshotModel):
    place: WorkPlace | None = None
    monthly_wage: NonNegativeMoney | None = None
    contract_months: Count = 0
    months_worked: Count = 0
    workshop: bool = False
    public_post: PublicPost | None = None
    # Extensions (001 L298, L316, L320).
    key_enterprise_new_hire: bool = False
    hired_year: Year | None = None
    agency_referral: bool = False
    consecutive_months: Count | None = None
    self_employed_months: Count | None = None


class Training(SnapshotModel):
    name: Name = ""
    days: Count = 0
    certified: bool = False
    year: Year | None = None
    # Extension: the once-per-lifetime subsidy was already paid for this training.
    subsidy_paid: bool = False


class Person(SnapshotModel):
    id: Name | None = None
    name: Name = ""
    id_number: str | None = Field(default=None, pattern=ID_NUMBER_PATTERN)
    sex: Sex | None = None
    birth_date: LedgerDate | None = None
    relation: Relation = "other"
    labour_capacity: LabourCapacity = "none"
    health: Health = "healthy"
    disability: Disability | None = None
    self_care: SelfCare = "able"
    bedridden: bool = False
    student: Student | None = None
    employment: Employment | None = None
    trainings: list[Training] = Field(default_factory=list)
    deceased: bool = False
    # When the death took effect: an insurer's stay is judged on its own dates (coverage on admission,
    # 001 L369), so "deceased" alone cannot tell a stay before the death from one after it.
    date_of_death: LedgerDate | None = None
    # Extensions (001 L391, 000 L229).
    rehab_condition: RehabCondition | None = None
    chronic_outpatient_cost: NonNegativeMoney | None = None
    # Person-level categories (docs/registry.md "Person-level categories"). The household's
    # `categories` dibao / tekun_dispersed / tekun_concentrated follow from its living members' flags
    # on every registry write (shared/person_categories.py).
    # 低保 cover: True = this person is in the household's 低保 cover; False = not covered (a
    # non-whole-household 低保, 001 L667 C类 "非整户保"); None = not stated (read as covered when the
    # household is 低保 and no member is flagged: a stored snapshot from before person-level cover).
    dibao_covered: bool | None = None
    # 特困人员 (001 L669-L671): dispersed (分散供养) or concentrated (集中供养) support; None = not a 特困 person.
    tekun: TekunSupport | None = None
    # Return-to-poverty risks this person carries (防止返贫监测, issue 13), in the vocabulary of
    # monitoring leads' risk_causes: the member whose illness, disability, schooling, accident or lost
    # income puts the household at risk. Empty = none recorded. Facts only: no rule pays on them.
    monitoring: list[RiskCause] = Field(default_factory=list)


class HouseholdBody(SnapshotModel):
    """Every household field except the registry-assigned `id` and `version`."""

    region_code: str = Field(pattern=r"^\d{2,12}$")
    village: Village | None = None
    status: HouseholdStatus = "candidate"
    identified_year: Year | None = None
    exit_date: LedgerDate | None = None
    categories: list[Category] = Field(default_factory=list)
    dibao_class: DibaoClass | None = None
    poverty_causes: list[PovertyCause] = Field(default_factory=list)
    income: Income | None = None
    guarantees: Guarantees = Field(default_factory=Guarantees)
    housing: Housing = Field(default_factory=Housing)
    water: Water = Field(default_factory=Water)
    relocation: Relocation = Field(default_factory=Relocation)
    production: Production = Field(default_factory=Production)
    members: list[Person] = Field(default_factory=list)
    # Extensions for monitoring_risk (PROGRAMS.md §1).
    medical_out_of_pocket_ytd: NonNegativeMoney | None = None
    disaster_this_year: bool = False
    # Extension for monitoring_range / risk_elimination (issue 13, docs/monitoring.md); None = not reported.
    rigid_expenses: RigidExpenses | None = None

    def living_members(self) -> list[Person]:
        return [member for member in self.members if not member.deceased]


NANKANG_FARMER_EXAMPLE: dict[str, Any] = {
    "id": "hh-nk-0001",
    "version": 3,
    "region_code": "360703",
    "village": {"code": "360703105201", "name": "新村村", "township_code": "360703105", "township_name": "隆木乡",
                "is_poor_village": True, "is_deep_poverty_village": True},
    "status": "registered",
    "identified_year": 2014,
    "exit_date": None,
    "categories": [],
    "dibao_class": None,
    "poverty_causes": ["lack_of_capital"],
    "income": {"year": 2019, "per_capita_net": "2800.00"},
    "guarantees": {"food": True, "clothing": True, "compulsory_education": True, "basic_medical": True,
                   "housing_safety": True, "drinking_water": True},
    "housing": {"safety_grade": "A", "no_house": False, "renovated": False, "planned_work": None},
    "water": {"in_tap_coverage": True, "planned_well": None},
    "relocation": {"relocated": False, "moved_in": False, "site_type": None},
    "production": {"crops_mu": 5, "poultry": 0, "rabbits": 0, "pigs_sheep": 2, "beef_cattle": 4, "four_fish_mu": 0,
                   "special_aquaculture_mu": 0, "bee_boxes": 0, "fruit_new_mu": 0, "fruit_tending_mu": 0,
                   "camellia_new_mu": 0, "camellia_tending_mu": 0, "double_rice_mu": 0, "oil_crops_mu": 0,
                   "herbs_mu": 0, "special_livestock": 0,
                   "land_rented_out": {"farmland_mu": 2, "mountain_mu": 0},
                   "machinery": [{"category": "tiller", "price": "12000.00", "national_subsidy": "2000.00"}]},
    "members": [
        {"id": "p1", "name": "钟大山", "id_number": "360782197803150018", "sex": "M", "birth_date": "1978-03-15",
         "relation": "head", "labour_capacity": "full", "health": "healthy", "disability": None, "self_care": "able",
         "bedridden": False, "student": None,
         "employment": {"place": "other_province", "monthly_wage": "3000.00", "contract_months": 12,
                        "months_worked": 8, "workshop": False, "public_post": None},
         "trainings": [], "deceased": False},
        {"id": "p2", "name": "刘秀英", "id_number": "360782198001200022", "sex": "F", "birth_date": "1980-01-20",
         "relation": "spouse", "labour_capacity": "full", "health": "healthy", "disability": None, "self_care": "able",
         "bedridden": False, "student": None, "employment": None, "trainings": [], "deceased": False},
        {"id": "p3", "name": "钟小明", "id_number": "360782200705010016", "sex": "M", "birth_date": "2007-05-01",
         "relation": "child", "labour_capacity": "none", "health": "healthy", "disability": None, "self_care": "able",
         "bedridden": False,
         "student": {"stage": "junior", "boarding": True, "special_school": False, "school": "隆木中学",
                     "major_group": None, "year_of_study": 2, "admitted_this_year": False, "out_of_province": False},
         "employment": None, "trainings": [], "deceased": False},
        {"id": "p4", "name": "钟小红", "id_number": "360782200203080022", "sex": "F", "birth_date": "2002-03-08",
         "relation": "child", "labour_capacity": "none", "health": "healthy", "disability": None, "self_care": "able",
         "bedridden": False,
         "student": {"stage": "university", "boarding": True, "special_school": False, "school": "华南理工大学",
                     "major_group": None, "year_of_study": 1, "admitted_this_year": True, "out_of_province": True},
         "employment": None, "trainings": [], "deceased": False},
    ],
}


class Household(HouseholdBody):
    """The registry's household as carried in events and accepted by evaluate."""

    model_config = ConfigDict(json_schema_extra={"examples": [NANKANG_FARMER_EXAMPLE]})

    # Optional so that a what-if household can be evaluated before it is registered.
    id: Name | None = None
    version: int = Field(default=0, ge=0, le=2**53)


# --- strict flavour -------------------------------------------------------------------

_STRICT_CACHE: dict[type[BaseModel], type[BaseModel]] = {}


def _strict_annotation(annotation: Any) -> Any:
    """Replace every SnapshotModel inside a type annotation by its strict variant."""
    if isinstance(annotation, type) and issubclass(annotation, SnapshotModel):
        return strict_variant(annotation)
    origin = typing.get_origin(annotation)
    if origin is None:
        return annotation
    args = typing.get_args(annotation)
    if origin is Annotated:
        return Annotated[(_strict_annotation(args[0]), *annotation.__metadata__)]
    new_args = tuple(_strict_annotation(arg) for arg in args)
    if new_args == args:
        return annotation
    if origin in (Union, types.UnionType):
        return Union[new_args]
    return origin[new_args] if len(new_args) > 1 else origin[new_args[0]]


def strict_variant(model: type[BaseModel], name: str | None = None) -> type[BaseModel]:
    """A subclass of `model` that forbids unknown fields, recursively through nested models."""
    if model in _STRICT_CACHE and name is None:
        return _STRICT_CACHE[model]
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {"model_config": ConfigDict(extra="forbid"), "__module__": __name__}
    for field_name, field in model.model_fields.items():
        strict = _strict_annotation(field.annotation)
        if strict is not field.annotation:
            annotations[field_name] = strict
            namespace[field_name] = field
    namespace["__annotations__"] = annotations
    strict_model = type(name or f"Strict{model.__name__}", (model,), namespace)
    if name is None:
        _STRICT_CACHE[model] = strict_model
    return strict_model


HouseholdCreate = strict_variant(HouseholdBody, name="HouseholdCreate")
HouseholdCreate.model_config["json_schema_extra"] = {
    "examples": [{k: v for k, v in NANKANG_FARMER_EXAMPLE.items() if k not in ("id", "version")}]
}
HouseholdCreate.model_rebuild(force=True)
StrictHousehold = strict_variant(Household, name="StrictHousehold")


def strict_household_model() -> type[BaseModel]:
    """The write-endpoint model (`HouseholdCreate`)."""
    return HouseholdCreate


__all__ = [
    "Category", "CovidUnsold", "Disability", "Employment", "Guarantees", "Health", "Household", "HouseholdBody",
    "HouseholdCreate", "HouseholdStatus", "Housing", "Income", "LandRentedOut", "Machinery", "Person",
    "Production", "PublicPost", "RelocatedFacility", "Relocation", "RigidExpenses", "RiskCause", "SnapshotModel", "StrictHousehold",
    "Student", "TekunSupport", "Training", "Village", "Water", "strict_household_model", "strict_variant",
    "NANKANG_FARMER_EXAMPLE",
]
