"""What the registry's OpenAPI document says of the DCI paths: the envelope, header and messages as JSON Schema.

Written for this implementation from the DCI Social Registry API v1.0.0 (docs/dci.md names the public
specification and its version; its file is not copied here). The schemas describe what the registry takes
and answers, so a test validates every exchange against the document the registry serves (openapi-core),
besides the public specification where it is on the machine.
"""
from __future__ import annotations

from typing import Any

TS = {"type": "string", "format": "date-time", "description": "ISO 8601 with its time zone, e.g. "
      "2026-12-07T10:20:07+08:00."}
ID99 = {"type": "string", "minLength": 1, "maxLength": 99}
LOCALE = {"type": "string", "pattern": "^[a-z]{3}$", "description": "ISO 639-3, e.g. zho or eng."}
STATUS = {"type": "string", "enum": ["rcvd", "pdng", "succ", "rjct"], "description": "rcvd received · pdng pending "
          "· succ success · rjct rejected."}
OBJ: dict[str, Any] = {"type": "object"}

HEADER = {
    "type": "object", "required": ["message_id", "message_ts", "action", "sender_id", "total_count"],
    "properties": {
        "version": {"type": "string", "enum": ["1.0.0"], "default": "1.0.0", "description": "Protocol version."},
        "message_id": {**ID99, "description": "Unique per sender; a resend with the same id gets the same answer."},
        "message_ts": TS,
        "action": {"type": "string", "description": "The path's verb: search, subscribe, unsubscribe, txn-status."},
        "sender_id": {**ID99, "description": "A sender registered with this registry (POST /v1/admin/dci/senders)."},
        "sender_uri": {"type": "string", "format": "uri", "description": "Where callbacks go; must be under the "
                       "sender's registered callback URI (default: that URI)."},
        "receiver_id": {"type": "string", "description": "This registry's id (JZ_REGISTRY_DCI_RECEIVER_ID)."},
        "total_count": {"type": "integer", "minimum": 0, "description": "How many requests the message holds."},
        "is_msg_encrypted": {"type": "boolean", "default": False, "description": "Must be false: not decrypted here."},
        "meta": {"type": "object", "description": "Free name/value information."},
    }}
CALLBACK_HEADER = {
    "type": "object", "required": ["message_id", "message_ts", "action", "status"],
    "properties": {
        "version": {"type": "string", "description": "Protocol version, 1.0.0."},
        "message_id": {"type": "string", "description": "Unique per answer; the same on every delivery attempt."},
        "message_ts": TS, "action": {"type": "string", "description": "on-search, on-subscribe, on-unsubscribe, "
                                                                      "txn-on-status or notify."},
        "status": STATUS,
        "status_reason_code": {"type": "string", "description": "The spec's header reason code, when rejected."},
        "status_reason_message": {"type": "string", "maxLength": 999, "description": "Why, in Chinese and English."},
        "total_count": {"type": "integer", "description": "Requests answered."},
        "completed_count": {"type": "integer", "description": "Requests completed (success or rejection)."},
        "sender_id": {"type": "string", "description": "This registry's id."},
        "receiver_id": {"type": "string", "description": "The sender the answer is for."},
        "is_msg_encrypted": {"type": "boolean", "description": "Always false."},
        "meta": {"type": "object", "description": "Notifications: subscription_code, event_id, notify_record_type."},
    }}
SIGNATURE = {"type": "string", "description": 'Signature: namespace="dci", keyId="<sender_id>|<key id>|ed25519", '
             'algorithm="ed25519", created, expires, headers="(created) (expires) digest", signature (docs/dci.md).'}
QUERY = {"description": "idtype-value {type, value}; expression {type, value: {expression: {collection, query}}}; "
         "predicate [{seq_num, expression1, condition, expression2}] (docs/dci.md).",
         "oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]}
PAGINATION = {"type": "object", "required": ["page_size"], "properties": {
    "page_size": {"type": "integer", "minimum": 1, "description": "Records per page (at most "
                  "JZ_REGISTRY_DCI_MAX_PAGE_SIZE)."},
    "page_number": {"type": "integer", "minimum": 1, "default": 1, "description": "From 1."}}}
SEARCH_ITEM = {"type": "object", "required": ["reference_id", "search_criteria"], "properties": {
    "reference_id": ID99, "timestamp": TS, "locale": LOCALE,
    "search_criteria": {"type": "object", "required": ["query_type", "query"], "properties": {
        "version": {"type": "string"}, "reg_event_type": {"type": "string"},
        "query_type": {"type": "string", "enum": ["idtype-value", "expression", "predicate"]},
        "response_entity": {"type": "string", "description": "Household (default), Family or Member."},
        "query": QUERY,
        "sort": {"type": "array", "items": {"type": "object", "properties": {
            "attribute_name": {"type": "string"}, "sort_order": {"type": "string", "enum": ["asc", "desc"]}}}},
        "pagination": PAGINATION, "consent": OBJ, "authorize": OBJ}}}}
SUBSCRIBE_ITEM = {"type": "object", "required": ["reference_id", "subscribe_criteria"], "properties": {
    "reference_id": ID99, "timestamp": TS, "locale": LOCALE,
    "subscribe_criteria": {"type": "object", "required": ["reg_event_type", "filter"], "properties": {
        "version": {"type": "string"}, "reg_type": {"type": "string"},
        "reg_event_type": {"type": "string", "description": "REGISTER, DEREGISTER, NewHouseHoldMember or UPDATE."},
        "frequency": {"type": "object", "properties": {"start_time": TS, "end_time": TS,
                                                       "frequency": {"type": "string"}}},
        "filter_type": {"type": "string", "enum": ["idtype-value", "expression", "predicate"]},
        "filter": QUERY, "response_entity": {"type": "string"}, "notify_record_type": {"type": "string"},
        "response_fields": {"type": "array", "items": {"type": "string"}}, "authorize": OBJ}}}}
MESSAGES = {
    "search": {"type": "object", "required": ["transaction_id", "search_request"], "properties": {
        "transaction_id": ID99, "search_request": {"type": "array", "minItems": 1, "items": SEARCH_ITEM}}},
    "subscribe": {"type": "object", "required": ["transaction_id", "subscribe_request"], "properties": {
        "transaction_id": ID99, "subscribe_request": {"type": "array", "minItems": 1, "items": SUBSCRIBE_ITEM}}},
    "unsubscribe": {"type": "object", "required": ["transaction_id", "subscription_codes"], "properties": {
        "transaction_id": ID99, "timestamp": TS,
        "subscription_codes": {"type": "array", "minItems": 1, "items": ID99}}},
    "txn-status": {"type": "object", "required": ["transaction_id", "txnstatus_request"], "properties": {
        "transaction_id": ID99, "txnstatus_request": {
            "type": "object", "required": ["reference_id", "txn_type", "attribute_type", "attribute_value"],
            "properties": {"reference_id": ID99, "txn_type": {"type": "string", "description": "search, subscribe "
                                                                                             "(or the spec's subscibe), unsubscribe."},
                           "attribute_type": {"type": "string", "enum": ["transaction_id", "reference_id_list",
                                                                         "correlation_id"]},
                           "attribute_value": {"oneOf": [{"type": "string"}, {"type": "array",
                                                                              "items": {"type": "string"}}]},
                           "locale": LOCALE}}}},
}
ACK = {"type": "object", "required": ["message"], "properties": {"message": {
    "type": "object", "required": ["ack_status", "timestamp", "correlation_id"], "properties": {
        "ack_status": {"type": "string", "enum": ["ACK", "NACK", "ERR"], "description": "ACK: a callback follows · "
                       "NACK: valid, nothing more follows (a resend already answered) · ERR: not taken."},
        "timestamp": TS, "correlation_id": {"type": "string", "maxLength": 99},
        "error": {"type": "object", "properties": {"code": {"type": "string"},
                                                   "message": {"type": "string", "maxLength": 999}}}}}}}
HTTP_ERROR = {"type": "object", "properties": {"errors": {"type": "array", "items": {
    "type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}}
RECORD_PAGE = {"type": "object", "required": ["reference_id", "timestamp", "status"], "properties": {
    "reference_id": {"type": "string"}, "timestamp": TS, "status": STATUS,
    "status_reason_code": {"type": "string"}, "status_reason_message": {"type": "string", "maxLength": 999},
    "data": {"type": "object", "required": ["reg_records"], "properties": {
        "version": {"type": "string"}, "reg_type": {"type": "string"}, "reg_event_type": {"type": "string"},
        "reg_records": {"type": "array", "items": {"type": "object"}}}},
    "pagination": {"type": "object", "required": ["page_size", "page_number", "total_count"], "properties": {
        "page_size": {"type": "integer"}, "page_number": {"type": "integer"}, "total_count": {"type": "integer"}}},
    "locale": LOCALE}}
SEARCH_RESPONSE = {"type": "object", "required": ["transaction_id", "correlation_id", "search_response"],
                   "properties": {"transaction_id": {"type": "string"}, "correlation_id": {"type": "string"},
                                  "search_response": {"type": "array", "items": RECORD_PAGE}}}
TXN_STATUS_RESPONSE = {"type": "object", "required": ["transaction_id", "correlation_id", "txnstatus_response"],
                       "properties": {"transaction_id": {"type": "string"}, "correlation_id": {"type": "string"},
                                      "txnstatus_response": {"type": "object", "required": ["txn_type", "txn_status"],
                                                             "properties": {"txn_type": {"type": "string"},
                                                                            "txn_status": {"type": "object"}}}}}


def envelope(message: dict, header: dict) -> dict:
    return {"type": "object", "required": ["header"], "properties": {
        "signature": SIGNATURE, "header": header, "message": message}}


def request_body(action: str) -> dict:
    schema = envelope(MESSAGES[action], HEADER)
    schema["required"] = ["header", "message"]
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
            "x-error-format": "dci"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_AUTH = {401: _json(HTTP_ERROR, "No or bad token, or a bad signature (err.request.unauthorized, "
                                "err.signature.missing, err.signature.invalid)"),
         403: _json(HTTP_ERROR, "The token lacks scope dci or may not speak for this sender_id (err.request.forbidden)"),
         503: _json(HTTP_ERROR, "err.service.unavailable: no DCI signing key (JZ_REGISTRY_DCI_SIGNING_KEY_FILE) or the "
                                "token's signing keys cannot be fetched right now")}
ACK_RESPONSES: dict = {200: _json(ACK, "ACK (callback follows) or NACK (a resend already called back)"),
                       400: _json(ACK, "ERR: the message cannot be taken; error.code and a reason"), **_AUTH}
SYNC_RESPONSES: dict = {
    action: {200: _json(envelope(schema, CALLBACK_HEADER), "The signed answer"),
             400: _json(envelope(OBJ, CALLBACK_HEADER), "The message cannot be taken: header status rjct and why"),
             **_AUTH}
    for action, schema in (("search", SEARCH_RESPONSE), ("txn-status", TXN_STATUS_RESPONSE))}
