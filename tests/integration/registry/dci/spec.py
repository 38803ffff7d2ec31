"""Every DCI exchange the tests make is validated twice (openapi-core):

* against the document the registry serves (``create_app(...).openapi()``: services/registry/dci/schemas.py),
  always;
* against the public DCI Social Registry API v1.0.0 (``social_api_v1.0.0.yaml``, spdci/standards, the
  version with subscribe and notify), when it is on the machine: ``JZ_DCI_SPEC`` or
  ``../shared/spec/dci/social_api_v1.0.0.yaml`` beside the clone. The file is not in the repository (the
  project does not commit fetched third-party files; docs/dci.md says where to get it).

The public file has defects that make any implementation fail it; they are corrected here, each named
(``ERRATA``), and nothing else is changed.
"""
from __future__ import annotations

import copy
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import jsonschema
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from services.registry.dci import schemas

ROOT = Path(__file__).resolve().parents[4]
PUBLIC_SPEC = Path(os.environ.get("JZ_DCI_SPEC") or ROOT.parent / "shared" / "spec" / "dci" / "social_api_v1.0.0.yaml")
HOST = "http://registry.test"

ERRATA = (
    "info.version is missing (the YAML folds it into the description): set to 1.0.0",
    "servers: the sandbox URL is replaced by / so paths match wherever the registry runs",
    "NotifyEventRequest…response_entity has `type: enum` (not a JSON Schema type): string",
    "UnSubscribeRequest requires `sunscription_codes` and names its property `timesstamp`: subscription_codes, "
    "timestamp",
    "UnSubscribeResponse names its property `timesatmp`: timestamp",
    "SubscribeResponse…subscriptions[] requires subscription_code and subscribe_criteria, which its properties "
    "call code and flatten: code and timestamp",
    "SubscribeRequest…response_fields has `examples` (an OpenAPI 3.1 keyword in a 3.0.3 file): example",
    "TxnStatusRequest…attribute_value is a oneOf of two identical string schemas (transaction_id, "
    "correlation_id), so no string is valid: anyOf",
    "SearchRequest…search_criteria.query is a oneOf whose expression form (an object with an object value) "
    "is also its idtype-value form (value: any type), so no expression query is valid: anyOf",
    "two $refs point into /paths/~1registry~1search/…/message/oneOf/0/…, through a $ref JSON pointers do not "
    "follow: they point at the same place in #/components/schemas/SearchRequest/…",
)
BROKEN_REF = "#/paths/~1registry~1search/post/requestBody/content/application~1json/schema/properties/message/oneOf/0/"


def _mend_refs(node):
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(BROKEN_REF):
            ref = node["$ref"] = "#/components/schemas/SearchRequest/" + ref[len(BROKEN_REF):]
        if isinstance(ref, str) and "/search_criteria/properties/query/oneOf/" in ref:  # renamed below
            node["$ref"] = ref.replace("/query/oneOf/", "/query/anyOf/")
        for value in node.values():
            _mend_refs(value)
    elif isinstance(node, list):
        for value in node:
            _mend_refs(value)


def _corrected(spec: dict) -> dict:
    spec = copy.deepcopy(spec)
    spec["info"].setdefault("version", "1.0.0")
    spec["servers"] = [{"url": "/"}]
    components = spec["components"]["schemas"]
    data = components["NotifyEventRequest"]["properties"]["notify_event"]["items"]["properties"]["data"]
    data["properties"]["response_entity"]["type"] = "string"
    unsubscribe = components["UnSubscribeRequest"]
    unsubscribe["properties"]["timestamp"] = unsubscribe["properties"].pop("timesstamp")
    unsubscribe["required"] = ["transaction_id", "timestamp", "subscription_codes"]
    answer = components["UnSubscribeResponse"]
    answer["properties"]["timestamp"] = answer["properties"].pop("timesatmp")
    subscriptions = components["SubscribeResponse"]["properties"]["subscribe_response"]["items"]["properties"][
        "subscriptions"]["items"]
    subscriptions["required"] = ["code", "timestamp"]
    fields = components["SubscribeRequest"]["properties"]["subscribe_request"]["items"]["properties"][
        "subscribe_criteria"]["properties"]["response_fields"]
    fields["example"] = fields.pop("examples")
    txn = components["TxnStatusRequest"]["properties"]["txnstatus_request"]["properties"]["attribute_value"]
    txn["anyOf"] = txn.pop("oneOf")
    query = components["SearchRequest"]["properties"]["search_request"]["items"]["properties"]["search_criteria"][
        "properties"]["query"]
    query["anyOf"] = query.pop("oneOf")
    _mend_refs(spec)
    return spec


@lru_cache(maxsize=None)
def public() -> OpenAPI | None:
    if not PUBLIC_SPEC.is_file():
        return None
    return OpenAPI.from_dict(_corrected(yaml.safe_load(PUBLIC_SPEC.read_text(encoding="utf-8"))))


@lru_cache(maxsize=None)
def own() -> OpenAPI:
    from services.registry.app import create_app
    from shared.config import RegistrySettings
    var = Path(tempfile.mkdtemp())
    settings = RegistrySettings(var_dir=var, database_url=f"sqlite+aiosqlite:///{var}/r.db",
                                kafka_bootstrap="127.0.0.1:1", run_consumer=False, log_json=False)
    document = create_app(settings).openapi()
    document["servers"] = [{"url": "/"}]
    return OpenAPI.from_dict(document, config=Config(spec_validator_cls=None))


def _problems(openapi: OpenAPI, name: str, path: str, body: dict, status: int | None = None,
              answer: dict | None = None) -> list[str]:
    request = MockRequest(HOST, "post", path, headers={"Authorization": "Bearer t"}, data=json.dumps(body),
                          content_type="application/json")
    found = []
    try:
        openapi.validate_request(request)
    except Exception as exc:  # noqa: BLE001 — reported, the test asserts the list is empty
        found.append(f"{name} {path} request: {exc} {_cause(exc)}")
    if status is not None:
        response = MockResponse(json.dumps(answer).encode(), status_code=status, content_type="application/json")
        try:
            openapi.validate_response(request, response)
        except Exception as exc:  # noqa: BLE001
            found.append(f"{name} {path} {status} response: {exc} {_cause(exc)}")
    return found


def _cause(exc: BaseException) -> str:
    parts = []
    while exc.__cause__ is not None or getattr(exc, "schema_errors", None):
        for error in getattr(exc, "schema_errors", None) or ():
            parts.append(f"[{'/'.join(map(str, error.path))}: {error.message}]")
        if exc.__cause__ is None:
            break
        exc = exc.__cause__
    return " ".join(parts)


def validate_exchange(path: str, body: dict, status: int, answer: dict, *, request_valid: bool = True) -> list[str]:
    """What is wrong with a request and its answer, by the registry's document and the public spec
    (``request_valid=False``: a request the test made wrong on purpose; only the answer is checked)."""
    found = _problems(own(), "own", path, body, status, answer)
    if not request_valid:
        found = [f for f in found if " request: " not in f]
        return found
    if public() is not None:
        # The public spec's requests require the fields a conforming sender sends; its answers are checked for
        # the success statuses it defines (it has no 400 and defines 401/403 as HttpErrorResponse).
        found += _problems(public(), "public", path, body, status if status in (200, 401, 403) else None, answer)
    return found


CALLBACK_SCHEMAS = {
    "/registry/on-search": schemas.SEARCH_RESPONSE, "/registry/txn/on-status": schemas.TXN_STATUS_RESPONSE,
    "/registry/on-subscribe": schemas.OBJ, "/registry/on-unsubscribe": schemas.OBJ, "/registry/notify": schemas.OBJ,
}


def validate_callback(path: str, body: dict) -> list[str]:
    """A callback the registry sent, by its own schemas and as a request to the public spec's callback path."""
    found = [f"own {path}: {e.message}" for e in jsonschema.Draft202012Validator(
        schemas.envelope(CALLBACK_SCHEMAS.get(path, schemas.OBJ), schemas.CALLBACK_HEADER)).iter_errors(body)]
    if public() is not None:
        found += _problems(public(), "public", path, body)
    return found
