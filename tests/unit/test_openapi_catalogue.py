"""OpenAPI for people (issue 12, item 2): the catalogue in shared/openapi_docs covers every operation,
property, problem type and vocabulary of the three services, and every example fits its schema.

The documents are the ones the services serve (create_app(...).openapi()): no database is touched.
"""
from __future__ import annotations

import re
import typing
from functools import lru_cache
from pathlib import Path

import jsonschema
import pytest

from shared.openapi_docs import (ERROR_FORMAT, JSON_MEDIA, PROBLEM_MEDIA_TYPE, SERVICES, bilingual, catalogue, enum_for, enums,
                                 examples, operations, problems)

ROOT = Path(__file__).resolve().parents[2]


@lru_cache(maxsize=None)
def document(service: str) -> dict:
    import tempfile

    from shared.config import SETTINGS_CLASSES
    factory = {"registry": "services.registry.app", "benefits": "services.benefits.app",
               "audit": "services.audit.app"}[service]
    create_app = __import__(factory, fromlist=["create_app"]).create_app
    var = Path(tempfile.mkdtemp())
    settings = SETTINGS_CLASSES[service](var_dir=var, database_url=f"sqlite+aiosqlite:///{var}/{service}.db",
                                         kafka_bootstrap="127.0.0.1:1", run_consumer=False, log_json=False)
    return create_app(settings).openapi()


def all_operations():
    return [(service, key, op) for service in SERVICES for key, op in operations(document(service))]


def test_every_operation_has_a_bilingual_summary_and_description():
    missing = [f"{service}: {key}" for service, key, _ in all_operations() if key not in catalogue(service)]
    assert missing == [], ("operations without an entry in shared/openapi_docs/<service>.yaml (add summary_zh and "
                           "description {zh, en} under `operations:`):\n" + "\n".join(missing))
    bad = [f"{service}: {key}: {op.get('summary')!r}" for service, key, op in all_operations()
           if not bilingual(op.get("summary")) or " · " not in op["summary"]
           or not bilingual(op.get("description"))]
    assert bad == [], "\n".join(bad)
    # the description starts with the Chinese paragraph, then the English one
    for service, key, op in all_operations():
        first, second = op["description"].split("\n\n")[:2]
        assert _cjk(first) > _latin_words(first) and _latin_words(second) > _cjk(second), (key, first, second)


def _cjk(text: str) -> int:
    return len(re.findall(r"[\u4e00-\u9fff]", text))


def _latin_words(text: str) -> int:
    return len(re.findall(r"[A-Za-z]{2,}", text))


def test_no_catalogue_entry_is_stale():
    for service in SERVICES:
        keys = {key for key, _ in operations(document(service))}
        own = set(catalogue(service))
        stale = {k for k in own if k not in keys and k not in _common_keys()}
        assert stale == set(), f"{service}: catalogue entries for operations that do not exist: {sorted(stale)}"
        stale_examples = set(examples(service)) - keys
        assert stale_examples == set(), f"{service}: examples for operations that do not exist: {stale_examples}"


def _common_keys() -> set[str]:
    import yaml
    from shared.openapi_docs import HERE
    return set(yaml.safe_load((HERE / "common.yaml").read_text(encoding="utf-8"))["operations"])


def _documented_examples(op: dict) -> set[str]:
    """Names of the examples an operation of the served document carries (request body or responses)."""
    names = {name for content in (op.get("requestBody") or {}).get("content", {}).values()
             for name in content.get("examples") or {}}
    return names | {name for response in op.get("responses", {}).values()
                    for content in (response.get("content") or {}).values() for name in content.get("examples") or {}}


def test_every_operation_has_an_example():
    counts, missing = {}, []
    for service, key, op in all_operations():
        recorded = examples(service).get(key) or []
        served = _documented_examples(op)
        counts.setdefault(service, [0, 0])[1] += 1
        if recorded and all(example["name"] in served for example in recorded):
            counts[service][0] += 1
        elif not recorded:
            missing.append(f"{service}: {key}: no example in shared/openapi_docs/examples/{service}.json")
        else:
            missing.append(f"{service}: {key}: recorded examples the document does not show: "
                           f"{sorted(e['name'] for e in recorded if e['name'] not in served)}")
        for example in recorded:  # a body is shown under the media type it was sent as
            body_shown = any(example["name"] in (content.get("examples") or {})
                             for content in (op.get("requestBody") or {}).get("content", {}).values())
            if example.get("body") is not None and not body_shown:
                missing.append(f"{service}: {key}: the request body of {example['name']!r} is not shown "
                               f"(its media_type {example.get('media_type', 'application/json')!r} is not the "
                               f"operation's: {sorted((op.get('requestBody') or {}).get('content', {}))})")
    summary = ", ".join(f"{service} {n} of {total}" for service, (n, total) in counts.items())
    print(f"\noperations with examples: {summary}")
    assert missing == [], ("record them (tests/integration/test_openapi_docs.py says how):\n" + "\n".join(missing))


def test_text_examples_name_their_media_type():
    """Metrics, HTML and CSV answers: documented under their own media type, a string of their first lines."""
    for service in SERVICES:
        for key, items in examples(service).items():
            for example in items:
                media = example.get("response_media_type")
                if media is not None:
                    assert media not in ("application/json", PROBLEM_MEDIA_TYPE), (service, key)
                    assert isinstance(example["response"], str) and example["response"].strip(), (service, key)
                    content = document(service)["paths"][key.split(" ", 1)[1]][key.split(" ")[0].lower()]
                    shown = content["responses"][str(example["status"])]["content"]
                    assert media in shown and "application/json" not in shown, (service, key, list(shown))
                else:
                    assert not isinstance(example["response"], str), (service, key)


def test_every_property_of_every_component_schema_is_described():
    undescribed, total = [], 0
    for service in SERVICES:
        for name, schema in document(service)["components"]["schemas"].items():
            for prop, value in (schema.get("properties") or {}).items():
                total += 1
                if not value.get("description"):
                    undescribed.append(f"{service}: {name}.{prop}")
    print(f"\nproperties described: {total - len(undescribed)} of {total}")
    assert undescribed == [], ("add to shared/openapi_docs/fields.yaml (`properties:` by name or "
                               "`overrides:` as Schema.property):\n" + "\n".join(undescribed))


def test_every_parameter_is_described():
    bare = [f"{service}: {key}: {p['name']}" for service, key, op in all_operations()
            for p in op.get("parameters", []) if not p.get("description")]
    assert bare == [], "add to `parameters:` of fields.yaml or of the operation:\n" + "\n".join(bare)


# ----------------------------------------------------------------------------------------- problems
def problem_types_in_code() -> set[str]:
    found: set[str] = set()
    for path in list((ROOT / "shared").rglob("*.py")) + list((ROOT / "services").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        found |= {m.group() for m in re.finditer(r"https://jingzhun\.dev/problems/[a-z0-9_/-]*[a-z0-9_]", text)
                  if not text.startswith("/{", m.end())}  # an f-string's fixed part: its codes are found below
        if '"about:blank"' in text:
            found.add("about:blank")
        if "PROBLEM_BASE" in text:  # shared/idempotency.py builds its URIs from a base
            found |= {"https://jingzhun.dev/problems/" + t for t in re.findall(r'PROBLEM_BASE \+ "([a-z-]+)"', text)}
        if "problems/credit/{code}" in text:  # credit refusals: _reject(status, "code", ...)
            found |= {"https://jingzhun.dev/problems/credit/" + c for c in re.findall(r'_reject\(\d+, "([a-z_]+)"', text)}
        if "problems/oauth/{error}" in text or "_oauth_error(" in text:
            found |= {"https://jingzhun.dev/problems/oauth/" + c
                      for c in re.findall(r'_oauth_error\(\d+, "([a-z_]+)"', text)}
    return found


def test_every_problem_type_in_the_code_is_listed_in_the_problem_schema():
    in_code = problem_types_in_code()
    assert len(in_code) >= 30 and "https://jingzhun.dev/problems/credit/loan_exists" in in_code
    schema = document("registry")["components"]["schemas"]["Problem"]
    listed = set(schema["properties"]["type"]["x-enum-labels"])
    assert in_code - listed == set(), f"add to shared/openapi_docs/problems.yaml `types:`: {sorted(in_code - listed)}"
    for uri in in_code:
        assert uri in schema["description"] and bilingual(problems()["types"][uri]), uri


def test_every_error_response_is_a_documented_problem_with_an_example():
    for service, key, op in all_operations():
        statuses = [s for s in op["responses"] if s.isdigit() and int(s) >= 400]
        if op.get(ERROR_FORMAT):  # another standard's error shapes: each documented with its JSON schema
            assert op[ERROR_FORMAT] in ("dci", "rfc6749") and statuses, (service, key)
            for status in statuses:
                assert op["responses"][status]["content"]["application/json"]["schema"], (service, key, status)
            continue
        if "Authorization" in str(op.get("security")) or "401" in op["responses"]:
            assert {"401", "403", "422"} <= set(statuses), (service, key, statuses)
        for status in statuses:
            content = op["responses"][status]["content"]
            assert list(content) == [PROBLEM_MEDIA_TYPE], (service, key, status, content)
            body = content[PROBLEM_MEDIA_TYPE]
            assert body["schema"] == {"$ref": "#/components/schemas/Problem"}
            assert body["example"]["status"] == int(status) or body.get("examples"), (service, key, status)


# --------------------------------------------------------------------------------------- enumerations
def _literal_values(alias) -> set[str]:
    values: set[str] = set()
    for arg in typing.get_args(alias):
        values |= _literal_values(arg) if typing.get_args(arg) else {arg}
    return values


def test_each_vocabulary_matches_the_code_it_documents():
    from services.audit.supervision.anomalies import RULES
    from services.benefits.credit.purposes import PURPOSES
    from shared import snapshot
    from shared.auth import ALL_SCOPES
    from shared.policy.programs import KNOWN_PROGRAMS

    labels = {key: set(e["labels"]) for key, e in enums().items()}
    assert labels["scopes"] == set(ALL_SCOPES)
    assert labels["anomaly_rules"] == set(RULES)
    for code, rule in RULES.items():
        assert _same(enums()["anomaly_rules"]["labels"][code], f"{rule.title} · {rule.title_en}")
    assert labels["loan_purposes"] == {p.code for p in PURPOSES}
    for purpose in PURPOSES:
        assert _same(enums()["loan_purposes"]["labels"][purpose.code], f"{purpose.label_zh} · {purpose.label_en}")
    assert labels["household_statuses"] == _literal_values(snapshot.HouseholdStatus)
    assert labels["categories"] == _literal_values(snapshot.Category)
    assert labels["dibao_classes"] == _literal_values(snapshot.DibaoClass)
    assert labels["poverty_causes"] == _literal_values(snapshot.RiskCause)
    assert labels["programmes"] == set(KNOWN_PROGRAMS)
    health = (ROOT / "services/benefits/rules/health.py").read_text(encoding="utf-8")
    assert labels["settlement_layers"] == set(re.findall(r'SettlementLayer\("([a-z_]+)"', health))
    credit = "".join((ROOT / p).read_text(encoding="utf-8") for p in
                     ("services/benefits/rules/credit.py", "services/benefits/credit/service.py"))
    reasons = set(re.findall(r'(?:reasons\.append\(|return \[|reject\()"([a-z_]+)"', credit))
    reasons |= set(re.findall(r'"([a-z_]+)" if request\.\w+ [<>]', credit))
    assert len(reasons) >= 12 and reasons <= labels["credit_reasons"], reasons - labels["credit_reasons"]
    for key, e in enums().items():
        for value, label in e["labels"].items():
            assert bilingual(label) and "·" in label, (key, value, label)


def _same(label: str, expected: str) -> bool:
    return re.sub(r"\s*·\s*", "·", label) == re.sub(r"\s*·\s*", "·", expected)


def _labelled_nodes(doc: dict):
    for name, schema in doc["components"]["schemas"].items():
        for prop, value in (schema.get("properties") or {}).items():
            yield f"{name}.{prop}", value
    for key, op in operations(doc):
        for parameter in op.get("parameters", []):
            yield f"{key} ?{parameter['name']}", parameter


def test_every_enumerated_value_has_a_label_where_it_is_used():
    from shared.openapi_docs import _enum_values
    seen = set()
    for service in SERVICES:
        for where, node in _labelled_nodes(document(service)):
            values = _enum_values(node.get("schema", node))
            found = enum_for(where.rsplit(".", 1)[-1].split("?")[-1], values, where)
            if "x-enum-labels" in node and where != "Problem.type":  # its list is the schema's description
                seen.add(found[0] if found else where)
                for value in values or []:
                    assert str(value) in node["x-enum-labels"], (service, where, value)
                assert all(label in node["description"] for label in node["x-enum-labels"].values()), where
    expected = {"scopes", "anomaly_rules", "credit_reasons", "loan_purposes", "household_statuses", "categories",
                "dibao_classes", "poverty_causes", "programmes", "settlement_layers"}
    assert expected - seen == set(), f"vocabularies no schema or parameter carries: {expected - seen}"


# ------------------------------------------------------------------------------------------- examples
def validator(doc: dict, schema: dict):
    root = {**schema, "components": doc["components"]}
    return jsonschema.Draft202012Validator(root)


def example_schemas(service: str):
    """(key, which, schema, value) for every example the document carries."""
    doc = document(service)
    for key, op in operations(doc):
        for media, content in (op.get("requestBody") or {}).get("content", {}).items():
            for name, ex in (content.get("examples") or {}).items():
                yield key, f"request {media} {name}", content["schema"], ex["value"]
        for status, response in op.get("responses", {}).items():
            for media, content in (response.get("content") or {}).items():
                if "example" in content:
                    yield key, f"{status} {media} example", content["schema"], content["example"]
                for name, ex in (content.get("examples") or {}).items():
                    yield key, f"{status} {media} {name}", content.get("schema", {}), ex["value"]
        for parameter in op.get("parameters", []):
            for name, ex in (parameter.get("examples") or {}).items():
                yield key, f"parameter {parameter['name']} {name}", parameter["schema"], ex["value"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_example_validates_against_its_schema(service):
    doc, checked, wrong = document(service), 0, []
    for key, which, schema, value in example_schemas(service):
        if which.split(" ")[1] not in JSON_MEDIA and not which.startswith(("request", "parameter")):
            continue  # a text answer (metrics, HTML, CSV): its first lines, not JSON (see the test above)
        checked += 1
        errors = sorted(validator(doc, schema).iter_errors(value), key=lambda e: list(e.path))
        wrong += [f"{key} [{which}] at {list(e.path)}: {e.message[:200]}" for e in errors[:3]]
    assert checked > 20
    assert wrong == [], "\n".join(wrong)


def test_the_enrichment_is_computed_once_and_served():
    from fastapi.testclient import TestClient
    import tempfile
    from services.audit.app import create_app
    from shared.config import AuditSettings
    var = Path(tempfile.mkdtemp())
    app = create_app(AuditSettings(var_dir=var, database_url=f"sqlite+aiosqlite:///{var}/a.db",
                                   kafka_bootstrap="127.0.0.1:1", run_consumer=False, log_json=False))
    first = app.openapi()
    assert app.openapi() is first
    served = TestClient(app).get("/openapi.json").json()
    anomalies = served["paths"]["/v1/supervision/anomalies"]["get"]
    assert anomalies["summary"].startswith("督查异常")
    rule = next(p for p in anomalies["parameters"] if p["name"] == "rule")
    assert rule["x-enum-labels"]["exit_overridden"].startswith("未达标强制退出")
    assert "`no_recent_visit` — 长期未入户走访" in rule["description"]
