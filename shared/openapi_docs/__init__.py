"""OpenAPI for people (issue 12, item 2): each service's generated document, enriched from a catalogue.

The views keep their short English summaries; what a reader needs beyond that is held here as data,
so that documenting an operation never means editing a route another engineer is changing:

* ``<service>.yaml`` and ``common.yaml``: per operation (key ``"METHOD /path"``, as the document names
  it), a summary ``中文 · English``, a description (Chinese paragraph, then English), parameter
  descriptions and the error statuses it can answer;
* ``examples/<service>.json``: request and response examples recorded from the demo district
  (``jingzhun demo-data``), one or more for every operation, with the request that produced each, so a test
  can replay it (tests/integration/test_openapi_docs.py says how: reads of the untouched demo first, then
  writes in order, later steps using what earlier ones answered). A request body of another media type
  (``media_type``: a multipart upload, an OAuth2 form, a merge patch) is documented as its fields, an
  uploaded file as its text; a text answer (``response_media_type``: metrics, HTML, CSV) by its first lines;
* ``fields.yaml``: a description for every property name (same name, same meaning), with per-schema
  overrides, and for common query parameters;
* ``enums.yaml``: every closed vocabulary (scopes, rule codes, reason codes, purposes, statuses,
  categories, programmes, settlement layers ...) with labels;
* ``problems.yaml``: every problem ``type`` URI the code answers with, and an example per status.

``install_openapi_docs(app, service)`` wraps ``app.openapi``: FastAPI builds the document, this
enriches it once, and the result is cached like FastAPI's own.
"""
from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI

HERE = Path(__file__).resolve().parent
PROBLEM_MEDIA_TYPE = "application/problem+json"
JSON_MEDIA = ("application/json", PROBLEM_MEDIA_TYPE)
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
SERVICES = ("registry", "benefits", "audit")
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
#: An operation marked so (``openapi_extra``) answers errors in the named standard's shape, not problem+json:
#: ``dci`` (the DCI Social Registry API's ERR acknowledgement and HttpErrorResponse), ``rfc6749`` (OAuth2).
ERROR_FORMAT = "x-error-format"
CJK = re.compile(r"[\u3400-\u9fff]")
LATIN = re.compile(r"[A-Za-z]{2,}")


def _yaml(name: str) -> Any:
    return yaml.safe_load((HERE / name).read_text(encoding="utf-8")) or {}


@lru_cache(maxsize=None)
def catalogue(service: str) -> dict[str, dict]:
    """Operation entries of a service: its own file over the entries every service shares."""
    entries = dict(_yaml("common.yaml").get("operations", {}))
    entries.update(_yaml(f"{service}.yaml").get("operations", {}))
    return entries


@lru_cache(maxsize=None)
def examples(service: str) -> dict[str, list[dict]]:
    path = HERE / "examples" / f"{service}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


@lru_cache(maxsize=None)
def fields() -> dict:
    return _yaml("fields.yaml")


@lru_cache(maxsize=None)
def enums() -> dict[str, dict]:
    return _yaml("enums.yaml")


@lru_cache(maxsize=None)
def problems() -> dict:
    return _yaml("problems.yaml")


def operations(doc: dict) -> list[tuple[str, dict]]:
    """(``"METHOD /path"``, operation) for every operation of a document."""
    return [(f"{method.upper()} {path}", op) for path, item in doc.get("paths", {}).items()
            for method, op in item.items() if method in METHODS]


def install_openapi_docs(app: FastAPI, service: str) -> None:
    original = app.openapi

    def openapi() -> dict:
        # Enriched in place, once, on the document FastAPI caches in app.openapi_schema: another wrapper
        # of app.openapi (e.g. one adding a sign-in scheme) sees and returns the same document.
        if not getattr(app.state, "openapi_for_people", False):
            app.openapi_schema = enrich(original(), service)
            app.state.openapi_for_people = True
        return app.openapi_schema

    app.openapi = openapi  # FastAPI's /openapi.json route calls app.openapi() on every request


def enrich(doc: dict, service: str) -> dict:
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = problem_schema()
    entries = catalogue(service)
    recorded = examples(service)
    for key, op in operations(doc):
        entry = entries.get(key, {})
        _document_operation(op, entry)
        _document_parameters(op, entry)
        _document_problems(op, entry)
        for example in recorded.get(key, []):
            _attach_example(op, example)
    for schema_name, schema in schemas.items():
        _describe_properties(schema_name, schema)
    for _, op in operations(doc):
        for parameter in op.get("parameters", []):
            _label_enum(parameter["name"], parameter, parameter.get("schema", {}))
    return doc


# ------------------------------------------------------------------------------------- operations
def _document_operation(op: dict, entry: dict) -> None:
    english = op.get("summary", "")
    if "summary" in entry:
        op["summary"] = entry["summary"]
    elif "summary_zh" in entry:
        op["summary"] = f"{entry['summary_zh']} · {english}"
    text = entry.get("description") or {}
    existing = op.get("description", "")
    parts = [text.get("zh", ""), text.get("en", "")]
    if existing and existing not in parts:  # the view's own (English) notes stay, after the catalogue's
        parts.append(existing)
    description = "\n\n".join(p.strip() for p in parts if p and p.strip())
    if description:
        op["description"] = description


def _document_parameters(op: dict, entry: dict) -> None:
    own = entry.get("parameters") or {}
    common = fields().get("parameters") or {}
    for parameter in op.get("parameters", []):
        name = parameter["name"]
        text = own.get(name) or common.get(name)
        if text:
            parameter["description"] = text if not parameter.get("description") \
                else f"{text}\n\n{parameter['description']}"


def _document_problems(op: dict, entry: dict) -> None:
    if op.get(ERROR_FORMAT):
        return  # its errors follow another standard's shapes (DCI, RFC 6749), documented by the route itself
    responses = op.setdefault("responses", {})
    statuses = {int(s) for s in responses if s.isdigit() and int(s) >= 400}
    if 401 in statuses:
        statuses.add(404 if any(p.get("in") == "path" for p in op.get("parameters", [])) else 401)
    statuses |= {int(s) for s in entry.get("problems", [])}
    by_status = problems()["statuses"]
    for status in sorted(statuses):
        known = by_status.get(status) or by_status[422]
        response = responses.setdefault(str(status), {})
        if not response.get("description"):
            response["description"] = known["description"]
        content = response.setdefault("content", {})
        content.pop("application/json", None)  # FastAPI's default 422 model; every error answers problem+json
        content[PROBLEM_MEDIA_TYPE] = {"schema": PROBLEM_REF, "example": known["example"]}


def _attach_example(op: dict, example: dict) -> None:
    name = example.get("name", "demo")
    summary = example.get("summary", name)
    if example.get("body") is not None and "requestBody" in op:
        for media, content in op["requestBody"].get("content", {}).items():
            if media in ("application/json", example.get("media_type")):
                content.setdefault("examples", {})[name] = {"summary": summary, "value": example["body"]}
    for where in ("path", "query"):
        for pname, value in (example.get(where) or {}).items():
            for parameter in op.get("parameters", []):
                if parameter["name"] == pname and parameter["in"] == where:
                    if _is_array(parameter.get("schema", {})) and not isinstance(value, list):
                        value = [value]  # a repeatable query parameter (?rule=a&rule=b) sent once
                    parameter.setdefault("examples", {})[name] = {"summary": summary, "value": value}
    if "response" in example:
        response = op.setdefault("responses", {}).setdefault(str(example["status"]), {"description": summary})
        media = PROBLEM_MEDIA_TYPE if example["status"] >= 400 else example.get("response_media_type",
                                                                               "application/json")
        contents = response.setdefault("content", {})
        if media not in JSON_MEDIA:
            # A text answer (metrics, HTML, CSV) the route left undeclared: FastAPI documents it as JSON of any
            # shape, which it is not. The example's media type replaces that guess.
            if contents.get("application/json", {}).get("schema") == {}:
                del contents["application/json"]
            contents.setdefault(media, {}).setdefault("schema", {"type": "string"})
        content = contents.setdefault(media, {})
        if example["status"] >= 400:
            content.setdefault("schema", PROBLEM_REF)
        content.setdefault("examples", {})[name] = {"summary": summary, "value": example["response"]}


def _is_array(schema: dict) -> bool:
    return schema.get("type") == "array" or any(_is_array(s) for s in schema.get("anyOf", []))


# ---------------------------------------------------------------------------------- schema fields
def _describe_properties(schema_name: str, schema: dict) -> None:
    catalogue_fields = fields()
    overrides = catalogue_fields.get("overrides") or {}
    by_name = catalogue_fields.get("properties") or {}
    for name, prop in (schema.get("properties") or {}).items():
        text = overrides.get(f"{schema_name}.{name}") or by_name.get(name)
        if not prop.get("description") and text:
            prop["description"] = text
        _label_enum(name, prop, prop, f"{schema_name}.{name}")


def _enum_values(schema: dict) -> list | None:
    """The closed values of a schema (an enum, a const union, Optional[...] or a list of them)."""
    if "enum" in schema:
        return schema["enum"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            values = [v for part in schema[key] for v in (_enum_values(part) or [])]
            return values or None
    if "items" in schema:
        return _enum_values(schema["items"])
    return None


def enum_for(name: str, values: list | None, qualified: str | None = None) -> tuple[str, dict] | None:
    """The enumeration a property or parameter takes its labels from: by its values, else by its name
    (``name`` or ``Schema.name``)."""
    table = enums()
    names = {name, qualified} - {None}
    if values:
        wanted = {str(v) for v in values}
        matches = [(len(e["labels"]), key) for key, e in table.items()
                   if wanted <= {str(v) for v in e["labels"]} and (names & set(e.get("names", [])) or len(wanted) > 1)]
        if matches:
            key = min(matches)[1]
            return key, table[key]
        return None  # a closed list of its own (e.g. an export format): not one of these vocabularies
    for key, e in table.items():
        if names & set(e.get("names", [])):
            return key, e
    return None


def _stringy(schema: dict) -> bool:
    if schema.get("type") == "string":
        return True
    if schema.get("type") == "array":
        return _stringy(schema.get("items") or {})
    return any(_stringy(part) for part in schema.get("anyOf", []) + schema.get("oneOf", []))


def _label_enum(name: str, holder: dict, schema: dict, qualified: str | None = None) -> None:
    values = _enum_values(schema)
    found = enum_for(name, values, qualified)
    if not found or (not values and not _stringy(schema)):
        return
    _, e = found
    labels = {str(k): v for k, v in e["labels"].items()}
    if values:
        labels = {str(v): labels[str(v)] for v in values if str(v) in labels}
    holder["x-enum-labels"] = labels
    listing = "\n".join(f"* `{value}` — {label}" for value, label in labels.items())
    title = e.get("title", "取值 · Values")
    description = holder.get("description", "")
    if listing not in description:
        holder["description"] = f"{description}\n\n{title}:\n\n{listing}".strip()


# ------------------------------------------------------------------------------------ problem+json
def problem_schema() -> dict:
    catalogue_problems = problems()
    types = catalogue_problems["types"]
    listing = "\n".join(f"* `{uri}` — {meaning}" for uri, meaning in types.items())
    schema = copy.deepcopy(catalogue_problems["schema"])
    schema["description"] = f"{schema['description'].strip()}\n\n{listing}"
    schema["properties"]["type"]["x-enum-labels"] = dict(types)
    schema["properties"]["type"]["examples"] = list(types)
    return schema


def bilingual(text: str | None) -> bool:
    return bool(text) and bool(CJK.search(text)) and bool(LATIN.search(text))


__all__ = ["install_openapi_docs", "enrich", "catalogue", "examples", "fields", "enums", "problems",
           "operations", "problem_schema", "bilingual", "enum_for", "SERVICES"]
