"""The published contract of the household snapshot (issue 11 item 4).

Which fields do rules read? Found mechanically: the benefits engine runs over a varied corpus of
households (spec examples, the demo district, bench.datagen households in every pack's region and
several years, and the example of docs/contract.md) while `SnapshotModel.__getattribute__` records
every field read, attributed to the programme whose rule function is on the stack. A static AST
scan of services/benefits/rules/*.py cross-checks that no field named in a rule escapes the corpus.

Every field read must then have a "中文 / English" description in the registry's and benefits'
/openapi.json and a row with an example value in docs/contract.md. The field table of
docs/contract.md is generated from the models, shared/snapshot_descriptions.py and the recorded
reads; after a change regenerate it with

    .venv/bin/python -m tests.unit.test_snapshot_contract --write
"""
from __future__ import annotations

import ast
import datetime as dt
import json
import random
import re
import sys
import types
import typing
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Union

import pytest

from bench.datagen import generate_household
from shared import snapshot as snapshot_module
from shared.policy.programs import KNOWN_PROGRAMS
from shared.snapshot import Household, HouseholdBody, SnapshotModel
from shared.snapshot_descriptions import DESCRIPTIONS, UNITS
from shared.snapshot_examples import contract_examples as shared_examples

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "services" / "benefits" / "rules"
ENGINE_FILE = str(ROOT / "services" / "benefits" / "engine.py")
CONTRACT = ROOT / "docs" / "contract.md"
TABLE_BEGIN, TABLE_END = "<!-- contract-fields:begin -->", "<!-- contract-fields:end -->"
EVERY_PROGRAMME = "every programme (status, members)"
CJK = re.compile(r"[\u4e00-\u9fff]")
LATIN = re.compile(r"[A-Za-z]{3,}")

# Helper functions that decide one programme but are called from the family's dispatcher.
ALIASES = {"industry.deep_poverty_special_items": "industry.deep_poverty_special", "credit.evaluate": "credit.microloan",
           "credit.microloan_eligibility": "credit.microloan", "housing.water_self_supply": "water.self_supply"}
# Regions of every pack (Nankang, Ganzhou, Jiangxi, Qinzhou, Shaoguan, national only) and years
# around the packs' validity, so that pack-specific branches (Shaoguan class 3, post-exit windows) run.
REGIONS = ("360703", "360702", "360102", "450702", "440203", "110101")
DATES = (dt.date(2016, 6, 1), dt.date(2018, 9, 1), dt.date(2020, 6, 30), dt.date(2021, 3, 1))


# --- recording reads ------------------------------------------------------------------

def owner_of(model: type, field: str) -> str:
    """The class that declares `field` (a strict variant's field belongs to the model it copies)."""
    for base in reversed(model.__mro__):
        if isinstance(base, type) and issubclass(base, SnapshotModel) and field in base.__dict__.get("__annotations__", {}):
            return base.__name__
    return model.__name__


_LABELS: dict[types.CodeType, str | None] = {}


def _programme_of(code: types.CodeType) -> str | None:
    """The programme a rule function decides, or None to keep looking further out on the stack."""
    if code in _LABELS:
        return _LABELS[code]
    path, label = Path(code.co_filename), None
    if path.parent == RULES_DIR and path.stem != "common":
        key = f"{path.stem}.{code.co_name}"
        if key in ALIASES:
            label = ALIASES[key]
        elif path.stem == "assessments" and f"assessment.{code.co_name}" in KNOWN_PROGRAMS:
            label = f"assessment.{code.co_name}"
        elif key in KNOWN_PROGRAMS:
            label = key
        elif code.co_name == "evaluate":
            label = f"{path.stem}.* (which programmes apply)"
    elif code.co_filename == ENGINE_FILE:
        label = EVERY_PROGRAMME
    _LABELS[code] = label
    return label


@contextmanager
def recording_reads():
    """Yield {(owner class, field): {programme}} filled by every field read on a snapshot model."""
    reads: dict[tuple[str, str], set[str]] = {}
    fields: dict[type, dict[str, str]] = {}
    original = SnapshotModel.__getattribute__

    def recorder(self, name):
        value = original(self, name)
        cls = type(self)
        known = fields.get(cls)
        if known is None:
            known = fields[cls] = {field: owner_of(cls, field) for field in cls.model_fields}
        if name in known:
            frame, programme = sys._getframe(1), None
            while frame is not None and programme is None:
                programme = _programme_of(frame.f_code)
                frame = frame.f_back
            reads.setdefault((known[name], name), set()).add(programme or "(outside the engine)")
        return value

    own = "__getattribute__" in SnapshotModel.__dict__
    SnapshotModel.__getattribute__ = recorder
    try:
        yield reads
    finally:
        if own:
            SnapshotModel.__getattribute__ = original
        else:
            del SnapshotModel.__getattribute__


# --- the corpus -------------------------------------------------------------------------

def contract_examples() -> list[dict]:
    """The example households of docs/contract.md (its ```json blocks), the full one first."""
    found = [json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", CONTRACT.read_text(encoding="utf-8"), re.S)]
    assert found, "docs/contract.md has no ```json example household"
    return found


def contract_example() -> dict:
    return contract_examples()[0]


def spec_examples() -> list[dict]:
    return [json.loads(path.read_text())["household"] for path in sorted((ROOT / "jingzhun_cli" / "examples").glob("*.json"))]


def corpus() -> Iterable[tuple[dict, dt.date]]:
    from jingzhun_cli.demo import EVALUATION_DATE, demo_households
    for household in [*contract_examples(), *spec_examples()]:
        for day in DATES:
            yield household, day
    for _, household in demo_households(60):
        yield household, EVALUATION_DATE
    rng = random.Random(20201103)
    for index in range(180):
        household = generate_household(rng, index)
        household["region_code"] = REGIONS[index % len(REGIONS)]
        yield household, DATES[(index // len(REGIONS)) % len(DATES)]


def record_engine_reads(households: Iterable[tuple[dict, dt.date]]) -> dict[tuple[str, str], set[str]]:
    """Reads of the engine, and of the bank's microcredit decision (extension and renewal, with a request)."""
    from decimal import Decimal

    from services.benefits.engine import evaluate
    from services.benefits.rules.credit import LoanRequest, microloan_eligibility
    from shared.policy import default_registry
    packs = default_registry()
    request = LoanRequest(amount=Decimal(30000), term_months=36, purpose="planting")
    parsed = [(snapshot, day, packs.resolve(snapshot.region_code, day))
              for snapshot, day in ((Household.model_validate(household), day) for household, day in households)]
    with recording_reads() as reads:
        for household, day, policy in parsed:
            evaluate(household, day, packs)
            for kind in ("extension", "renewal"):
                microloan_eligibility(household, request, policy, day, kind)
    return reads


_ENGINE_READS: dict | None = None


def engine_reads() -> dict[tuple[str, str], set[str]]:
    global _ENGINE_READS
    if _ENGINE_READS is None:
        _ENGINE_READS = record_engine_reads(corpus())
    return _ENGINE_READS


def static_rule_attributes() -> set[str]:
    names = set()
    for path in sorted(RULES_DIR.glob("*.py")):
        names |= {node.attr for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Attribute)}
    return names


# --- the model tree and the table of docs/contract.md ------------------------------------------

def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(inner annotation, nullable) of `X | None`."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (Union, types.UnionType) and type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        return (rest[0] if len(rest) == 1 else Union[tuple(rest)]), True
    return annotation, False


# Named types of shared/bounds.py and shared/money.py, read from the declared annotation text
# (pydantic keeps only the base type, Decimal or int, in FieldInfo.annotation).
NAMED_TYPES = {"NonNegativeMoney": ("decimal string ≥ 0", "yuan 元"), "Money": ("decimal string", "yuan 元"),
               "Quantity": ("decimal (string or number)", ""), "Count": ("integer ≥ 0", ""),
               "Year": ("integer (year)", ""), "LedgerDate": ("date YYYY-MM-DD", ""), "Name": ("string", "")}


def _named_type(owner: str, field: str) -> str | None:
    declared = str(snapshot_classes()[owner].__dict__.get("__annotations__", {}).get(field, ""))
    return next((name for name in NAMED_TYPES if re.search(rf"\b{name}\b", declared)), None)


def type_label(annotation: Any, named: str | None = None) -> str:
    inner, nullable = _unwrap(annotation)
    suffix = " or null" if nullable else ""
    if isinstance(inner, type) and issubclass(inner, SnapshotModel):
        return f"object{suffix}"
    if typing.get_origin(inner) is list:
        (item,) = typing.get_args(inner)
        return f"array of {'objects' if isinstance(item, type) and issubclass(item, SnapshotModel) else type_label(item)}"
    if typing.get_origin(inner) is Literal:
        return "one of " + ", ".join(f"`{value}`" for value in typing.get_args(inner)) + suffix
    if named:
        return NAMED_TYPES[named][0] + suffix
    base = typing.get_args(inner)[0] if typing.get_origin(inner) is Annotated else inner
    return {bool: "boolean", int: "integer", str: "string", dt.date: "date YYYY-MM-DD"}.get(base, str(base)) + suffix


def unit_of(owner: str, field: str, named: str | None) -> str:
    if (owner, field) in UNITS:
        return UNITS[(owner, field)]
    if named and NAMED_TYPES[named][1]:
        return NAMED_TYPES[named][1]
    for ending, unit in (("_mu", "mu 亩"), ("_kg", "kg 公斤"), ("_m2", "m² 平方米"), ("_months", "months 月")):
        if field.endswith(ending):
            return unit
    return ""


def model_tree(model: type = Household, prefix: str = "") -> Iterable[tuple[str, str, str, Any, type | None]]:
    """(path, owner class, field, annotation, nested model) for every field, depth first."""
    for field, info in model.model_fields.items():
        path = f"{prefix}{field}"
        inner, _ = _unwrap(info.annotation)
        nested = None
        if typing.get_origin(inner) is list and typing.get_args(inner):
            inner, path = typing.get_args(inner)[0], path + "[]"
        if isinstance(inner, type) and issubclass(inner, SnapshotModel):
            nested = inner
        yield path, owner_of(model, field), field, info.annotation, nested
        if nested is not None:
            yield from model_tree(nested, path + ".")


def example_value(path: str, documents: list[dict]) -> Any:
    """The first non-empty value at `path` in the example documents (None if none has one)."""
    def values(node: Any, parts: list[str]) -> Iterable[Any]:
        if not parts:
            yield node
            return
        head, rest = parts[0], parts[1:]
        listed = head.endswith("[]")
        child = node.get(head.removesuffix("[]")) if isinstance(node, dict) else None
        for item in (child or []) if listed else [child]:
            if item is not None:
                yield from values(item, rest)
    for document in documents:
        for value in values(document, path.split(".")):
            if value not in (None, [], {}, "", False, 0, "0", "0.00"):
                return value
    for document in documents:  # a false / zero value still shows the shape
        for value in values(document, path.split(".")):
            if value is not None:
                return value
    return None


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _example_cell(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return "see the example"
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def readers_cell(programmes: set[str]) -> str:
    """The "read by" cell; a long list is grouped by family so the table stays readable."""
    names = sorted(programmes)
    if len(names) > 6:
        families: dict[str, list[str]] = {}
        for name in names:
            families.setdefault(name.split(".")[0] if name in KNOWN_PROGRAMS else name, []).append(name)
        return ", ".join(f"`{group[0]}`" if len(group) == 1 and group[0] in KNOWN_PROGRAMS
                         else family if group == [family] else f"{family}.* ({len(group)})"
                         for family, group in families.items())
    return ", ".join(f"`{name}`" if name in KNOWN_PROGRAMS else name for name in names) or "—"


def render_table(reads: dict[tuple[str, str], set[str]], documents: list[dict]) -> str:
    lines = ["| field | type | unit | 中文 | English | read by | example |", "|---|---|---|---|---|---|---|"]
    for path, owner, field, annotation, _ in model_tree():
        zh, en = DESCRIPTIONS.get((owner, field), ("", ""))
        named = _named_type(owner, field)
        value = example_value(path, documents)
        lines.append("| " + " | ".join([f"`{path}`", _cell(type_label(annotation, named)), unit_of(owner, field, named),
                                         _cell(zh), _cell(en), readers_cell(reads.get((owner, field), set())),
                                         "—" if value is None else _example_cell(value)]) + " |")
    return "\n".join(lines)


def contract_documents() -> list[dict]:
    return [*contract_examples(), *spec_examples()]


def contract_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        match = re.match(r"^\| `([^`]+)` \|(.*)\|$", line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in re.split(r"(?<!\\)\|", match.group(2))]
    return rows


# --- the checks ---------------------------------------------------------------------

def schema_gaps(reads: Iterable[tuple[str, str]], schema: dict, classes: dict[str, type]) -> list[str]:
    """Read fields whose property in an OpenAPI document lacks a Chinese + English description."""
    components = schema.get("components", {}).get("schemas", schema.get("$defs", {}))
    if "properties" in schema:
        components = {**components, schema.get("title", "root"): schema}
    gaps = []
    for owner, field in sorted(reads):
        found = []
        for name, component in components.items():
            model = classes.get(name.split("-")[0])
            if model is None or field not in component.get("properties", {}) or owner_of(model, field) != owner:
                continue
            found.append(component["properties"][field].get("description", ""))
        if not found:
            gaps.append(f"{owner}.{field}: not in the schema")
        elif not all(CJK.search(text) and LATIN.search(text) for text in found):
            gaps.append(f"{owner}.{field}: no Chinese and English description")
    return gaps


def contract_gaps(reads: Iterable[tuple[str, str]], contract_text: str, tree=None) -> list[str]:
    """Read fields that docs/contract.md does not list with both texts and an example value."""
    rows = contract_rows(contract_text)
    paths = {(owner, field): path for path, owner, field, *_ in (tree if tree is not None else model_tree())}
    gaps = []
    for owner, field in sorted(reads):
        path = paths.get((owner, field))
        row = rows.get(path) if path else None
        if row is None:
            gaps.append(f"{owner}.{field}: not in docs/contract.md")
        elif not (CJK.search(row[2]) and LATIN.search(row[3])) or row[5] in ("", "—"):
            gaps.append(f"{path}: docs/contract.md lacks the Chinese, the English or the example")
    return gaps


def snapshot_classes() -> dict[str, type]:
    found, todo = {}, [SnapshotModel]
    while todo:
        cls = todo.pop()
        found[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return found


def openapi(service: str, tmp_path: Path) -> dict:
    from shared.config import BenefitsSettings, RegistrySettings
    common = {"var_dir": tmp_path, "kafka_bootstrap": "127.0.0.1:1", "log_json": False, "run_consumer": False}
    if service == "registry":
        from services.registry.app import create_app
        return create_app(RegistrySettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/r.db", **common)).openapi()
    from services.benefits.app import create_app
    return create_app(BenefitsSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/b.db", **common)).openapi()


# --- tests ------------------------------------------------------------------------------

def test_the_engine_reads_the_fields_issue_11_names():
    reads = engine_reads()
    for field in [("Production", "covid_unsold"), ("CovidUnsold", "bamboo_rats"), ("Production", "relocated_facility"),
                  ("RelocatedFacility", "facility_agriculture_mu"), ("Person", "rehab_condition"),
                  ("Person", "chronic_outpatient_cost"), ("Person", "dibao_covered"),
                  ("Employment", "key_enterprise_new_hire"), ("Employment", "agency_referral"),
                  ("Employment", "self_employed_months")]:
        assert field in reads, field
    assert "industry.covid_unsold" in reads[("CovidUnsold", "bamboo_rats")]
    assert reads[("Person", "rehab_condition")] >= {"health.child_rehab"}
    assert "employment.startup" in reads[("Employment", "self_employed_months")]


def test_every_field_named_in_a_rule_is_read_by_the_corpus():
    """The static cross-check: a field a rule names but no corpus household reaches is unverified."""
    read_names = {field for _, field in engine_reads()}
    snapshot_fields = {field for cls in snapshot_classes().values() for field in cls.model_fields}
    # Attribute names in rules that are snapshot field names only by coincidence (other objects).
    not_snapshot = {"name", "year", "code", "kind"} - read_names
    missing = (static_rule_attributes() & snapshot_fields) - read_names - not_snapshot
    assert not missing, f"rules name fields no corpus household makes them read: {sorted(missing)}"


@pytest.mark.parametrize("service", ["registry", "benefits"])
def test_every_field_rules_read_is_described_in_the_openapi(service, tmp_path):
    schema = openapi(service, tmp_path)
    assert schema_gaps(engine_reads(), schema, snapshot_classes()) == []
    if service == "registry":  # the write body too, whose models are the strict variants
        content = schema["paths"]["/v1/households"]["post"]["requestBody"]["content"]["application/json"]
        assert content["schema"]["$ref"].endswith("/HouseholdCreate")
        # The contract's examples, the same as docs/contract.md shows, are offered to callers.
        offered = [content["examples"][name]["value"] for name in shared_examples()]
        # FastAPI leaves out null members of the OpenAPI document; null is every field's default here.
        assert offered == [_without_nulls(example) for example in contract_examples()]
        assert offered[0]["members"][2]["rehab_condition"] == "autism"
        member = schema["components"]["schemas"]["StrictPerson"]["properties"]["chronic_outpatient_cost"]
        assert member["description"].startswith("本年慢性病门诊费用") and "outpatient cost" in member["description"]


def test_every_snapshot_field_has_both_descriptions():
    undocumented = [(owner, field) for _, owner, field, *_ in model_tree() if (owner, field) not in DESCRIPTIONS]
    assert undocumented == []
    assert all(CJK.search(zh) and LATIN.search(en) for zh, en in DESCRIPTIONS.values())
    stale = set(DESCRIPTIONS) - {(owner, field) for _, owner, field, *_ in model_tree()}
    assert stale == set(), "descriptions of fields that no longer exist"


def test_every_field_rules_read_is_in_contract_md_with_an_example():
    assert contract_gaps(engine_reads(), CONTRACT.read_text(encoding="utf-8")) == []


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    return [_without_nulls(item) for item in value] if isinstance(value, list) else value


def test_contract_md_shows_the_shipped_examples():
    """docs/contract.md's JSON blocks are shared/snapshot_examples.json, which the registry's OpenAPI offers."""
    assert contract_examples() == list(shared_examples().values())


def test_contract_md_field_table_is_current():
    text = CONTRACT.read_text(encoding="utf-8")
    current = text.split(TABLE_BEGIN, 1)[1].split(TABLE_END, 1)[0].strip()
    assert current == render_table(engine_reads(), contract_documents()), \
        "docs/contract.md is stale: run .venv/bin/python -m tests.unit.test_snapshot_contract --write"


class _SyntheticPerson(snapshot_module.Person):
    shoe_size: int = 0


class _SyntheticHousehold(HouseholdBody):
    members: list[_SyntheticPerson] = []


def test_a_new_rule_reading_an_undocumented_field_fails_the_contract(monkeypatch):
    """Synthetic cases: a rule reads a field nobody documented, and a documented field loses its text."""
    def new_rule(household):
        return [person.shoe_size for person in household.members]

    household = _SyntheticHousehold.model_validate({"region_code": "360703", "members": [{"shoe_size": 41}]})
    with recording_reads() as reads:
        new_rule(household)
    assert set(reads) == {("HouseholdBody", "members"), ("_SyntheticPerson", "shoe_size")}
    classes = {**snapshot_classes(), "_SyntheticPerson": _SyntheticPerson}
    schema = _SyntheticHousehold.model_json_schema()
    assert schema_gaps(reads, schema, classes) == ["_SyntheticPerson.shoe_size: no Chinese and English description"]
    tree = list(model_tree(_SyntheticHousehold))
    assert contract_gaps(reads, CONTRACT.read_text(encoding="utf-8"), tree) == \
        ["_SyntheticPerson.shoe_size: not in docs/contract.md"]

    monkeypatch.delitem(DESCRIPTIONS, ("Person", "rehab_condition"))
    real = {("Person", "rehab_condition")}
    assert schema_gaps(real, Household.model_json_schema(), snapshot_classes()) == \
        ["Person.rehab_condition: no Chinese and English description"]
    stripped = CONTRACT.read_text(encoding="utf-8").replace("| `members[].rehab_condition` |", "| members |")
    assert contract_gaps(real, stripped) == ["Person.rehab_condition: not in docs/contract.md"]



# Programmes that read a fact only the full example sends (issue 11 item 4), by the member they pay.
FULL_EXAMPLE_PROGRAMMES = {
    ("industry.covid_unsold", None), ("industry.relocated_facility", None), ("safety_net.dibao", None),
    ("employment.hiring_subsidy", "钟建国"), ("employment.job_referral", "钟建国"), ("employment.startup", "黄丽"),
    ("health.chronic_outpatient", "黄丽"), ("health.child_rehab", "钟乐乐"), ("education.vocational_tuition", "钟晓雨"),
    ("safety_net.tekun", "刘桂花"),
}


async def test_the_contract_examples_register_and_evaluate(databases, tmp_path):
    """Each example of docs/contract.md is accepted by the registry as written, keeps the facts, and pays."""
    import httpx

    from services.benefits.engine import evaluate
    from services.registry.app import create_app
    from shared.auth import mint_token
    from shared.config import RegistrySettings
    from tests.helpers import running_app

    settings = RegistrySettings(var_dir=tmp_path, database_url=await databases.url("registry"),
                                kafka_bootstrap="127.0.0.1:1", log_json=False)
    app = create_app(settings, benefits_transport=httpx.MockTransport(lambda request: httpx.Response(503)))
    stored = []
    # An admin: only an admin registers a household in a status other than candidate (bringing in a ledger).
    async with running_app(app, mint_token(settings, "admin", subject="admin-1")) as client:
        for example in contract_examples():
            created = await client.post("/v1/households", json=example)
            assert created.status_code == 201, created.text
            stored.append((await client.get(created.headers["Location"])).json())

    full = stored[0]
    assert full["production"]["covid_unsold"]["bamboo_rats"] == 20
    assert full["production"]["relocated_facility"]["facility_agriculture_mu"] in ("1", 1, "1.00")
    members = {member["name"]: member for member in full["members"]}
    assert members["钟乐乐"]["rehab_condition"] == "autism"
    assert members["黄丽"]["chronic_outpatient_cost"] == "3000.00"
    assert members["钟建国"]["employment"]["key_enterprise_new_hire"] is True
    assert members["钟晓雨"]["student"]["entry_year"] == 2017
    assert members["刘桂花"]["tekun"] == "dispersed" and members["钟建国"]["dibao_covered"] is False

    names = {member["id"]: member["name"] for member in full["members"]}
    result = evaluate(full, dt.date(2020, 6, 30))
    assert result.policy.pack == "nankang-2020"
    paid = {(e.program, names.get(e.person_id)) for e in result.entitlements if e.eligible and e.amount > 0}
    assert FULL_EXAMPLE_PROGRAMMES <= paid, FULL_EXAMPLE_PROGRAMMES - paid
    # Entered in 2017, before autumn 2018: the old 850 rate, not the engineering group's 2,500 (001 L625).
    assert result.entitlement("education.vocational_tuition", members["钟晓雨"]["id"]).amount == 850
    # Person-level categories: 特困 pays only the 特困 member, 低保 counts only the covered members (001 L667-L671).
    assert [names[e.person_id] for e in result.entitlements if e.program == "safety_net.tekun"] == ["刘桂花"]
    dibao = result.entitlement("safety_net.dibao")
    assert dibao.amount == 600 and sorted(names[i] for i in next(
        c.value for c in dibao.explanation if c.condition.startswith("covered members"))) == ["钟乐乐", "黄丽"]
    bamboo = next(c for c in result.entitlement("industry.covid_unsold").explanation if "bamboo" in c.condition)
    assert bamboo.value == "600"  # 20 bamboo rats x 30, outside the 2,500 cap (001 L214)

    exited = evaluate(stored[1], dt.date(2020, 6, 30))
    exited_paid = {e.program for e in exited.entitlements if e.eligible and e.amount > 0}
    assert {"employment.public_post", "education.student_loan", "education.vocational_tuition"} <= exited_paid
    qinzhou = evaluate(stored[2], dt.date(2020, 6, 30)).assessment("exit_readiness")
    assert qinzhou.result is True and {"income_source", "television"} <= {c.condition.split()[0] for c in qinzhou.explanation}


def main(argv: list[str]) -> int:
    if argv != ["--write"]:
        print(__doc__)
        return 2
    text = CONTRACT.read_text(encoding="utf-8")
    head, rest = text.split(TABLE_BEGIN, 1)
    _, tail = rest.split(TABLE_END, 1)
    table = render_table(engine_reads(), contract_documents())
    CONTRACT.write_text(f"{head}{TABLE_BEGIN}\n{table}\n{TABLE_END}{tail}", encoding="utf-8")
    print(f"wrote {table.count(chr(10)) - 1} fields to {CONTRACT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
