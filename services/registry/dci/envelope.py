"""The DCI message envelope ``{signature, header, message}``: header checks, acknowledgements and signatures.

Pure functions: no database, no network. The routes (``views``) and the worker (``worker``) call them.

**Header checks** (``MsgHeader_V1.0.0``): ``version`` 1.0.0; ``message_id`` and ``sender_id`` of 1–99
characters; ``message_ts`` an ISO 8601 instant *with* its time zone and not in the future beyond the allowed
skew; ``action`` the one the path names; ``total_count`` the number of requests in the message;
``receiver_id`` (when given) this registry's; ``sender_uri`` (when given) an http(s) URI under the callback
URI the sender was registered with (so no request can make the registry call an address of its choosing);
encrypted messages are refused (this registry does not decrypt). A failed check answers ``ERR`` at once with
the spec's ``Error.code``; the message starts with the spec's header reason code where there is one
(``rjct.message_ts.invalid: …``), and carries Chinese and English.

**Signature** (``MsgSignature``, documented in docs/dci.md): an HTTP-signature-style string ::

    Signature: namespace="dci", keyId="<sender_id>|<key id>|ed25519", algorithm="ed25519",
        created="<unix s>", expires="<unix s>", headers="(created) (expires) digest", signature="<base64>"

over the signing string ``"(created): <c>\\n(expires): <e>\\ndigest: BLAKE-512=<base64 digest>"`` where the
digest is BLAKE2b-512 of the canonical JSON (sorted keys, UTF-8, no spaces) of ``{"header": …, "message": …}``.
A sender registered with a public key must sign every request; the registry signs every answer and callback
with its own key (public key at ``GET /registry/.well-known/dci-keys``).
"""
from __future__ import annotations

import base64
import hashlib
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.signing import canonical_json

VERSION = "1.0.0"
MAX_ID = 99  # message_id, sender_id, transaction_id, reference_id, subscription codes (spec: maxLength 99)
MAX_REQUESTS = 100  # requests in one message (rjct.total_count.limit_exceeded above)
LOCALE = re.compile(r"^[a-z]{3}$")  # ISO 639-3
SIGNATURE_TTL_S = 3600
ALGORITHM = "ed25519"
ENCRYPTED_FIELDS = {"ciphertext", "encrypted_key", "iv", "tag"}

#: path action → the callback action the spec names for its answer
CALLBACK_ACTION = {"search": "on-search", "subscribe": "on-subscribe", "unsubscribe": "on-unsubscribe",
                   "txn-status": "txn-on-status", "notify": "notify"}
#: path action → the sender's path that receives the callback (relative to its registered base URI)
CALLBACK_PATH = {"search": "/registry/on-search", "subscribe": "/registry/on-subscribe",
                 "unsubscribe": "/registry/on-unsubscribe", "txn-status": "/registry/txn/on-status",
                 "notify": "/registry/notify"}
#: path action → the message's list of requests and how many it may hold
REQUEST_LIST = {"search": "search_request", "subscribe": "subscribe_request", "unsubscribe": "subscription_codes",
                "txn-status": None}


class EnvelopeError(Exception):
    """A request that cannot be taken: answered with ``ERR`` (or an HTTP error) and nothing stored."""

    def __init__(self, code: str, message_en: str, message_zh: str, *, reason: str | None = None,
                 http_status: int = 400) -> None:
        super().__init__(message_en)
        self.code, self.reason, self.http_status = code, reason, http_status
        self.message_en, self.message_zh = message_en, message_zh

    @property
    def message(self) -> str:
        text = f"{self.message_zh} / {self.message_en}"
        return (f"{self.reason}: {text}" if self.reason else text)[:999]


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def timestamp(value: datetime | None = None) -> str:
    """An instant as the spec writes it: ISO 8601 with its zone (UTC, ``Z``)."""
    return (value or now_utc()).astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_instant(value: Any) -> datetime | None:
    """An ISO 8601 instant with a time zone, or None (a date, a local time or garbage)."""
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def _identifier(value: Any, name: str, *, reason: str | None = None, code: str = "err.request.bad") -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID:
        raise EnvelopeError(code, f"header.{name} must be a string of 1 to {MAX_ID} characters.",
                            f"header.{name} 须为 1 至 {MAX_ID} 个字符的字符串。", reason=reason)
    return value


@dataclass(frozen=True)
class Header:
    message_id: str
    message_ts: datetime
    action: str
    sender_id: str
    total_count: int
    sender_uri: str | None
    receiver_id: str | None
    raw: dict


def check_header(header: Any, *, action: str, receiver_id: str, skew_s: float,
                 now: datetime | None = None) -> Header:
    """The request header, checked as the module docstring says (EnvelopeError on the first failure)."""
    if not isinstance(header, dict):
        raise EnvelopeError("err.request.bad", "header must be an object.", "header 须为对象。")
    version = header.get("version", VERSION)
    if version != VERSION:
        raise EnvelopeError("err.version.not_supported", f"Only version {VERSION} is supported, not {version!r}.",
                            f"只支持 {VERSION} 版本，不支持 {version!r}。", reason="rjct.version.invalid")
    message_id = _identifier(header.get("message_id"), "message_id")
    sent = parse_instant(header.get("message_ts"))
    if sent is None:
        raise EnvelopeError("err.request.bad", "header.message_ts must be an ISO 8601 date-time with its time zone, "
                            "e.g. 2026-12-07T10:20:07+08:00.",
                            "header.message_ts 须为带时区的 ISO 8601 时间，如 2026-12-07T10:20:07+08:00。",
                            reason="rjct.message_ts.invalid")
    if sent > (now or now_utc()) + timedelta(seconds=skew_s):
        raise EnvelopeError("err.request.bad", "header.message_ts is in the future.", "header.message_ts 晚于当前时间。",
                            reason="rjct.message_ts.invalid")
    if header.get("action") != action:
        raise EnvelopeError("err.request.bad", f"header.action must be {action!r} on this path.",
                            f"此路径的 header.action 须为 {action!r}。", reason="rjct.action.invalid")
    sender_id = _identifier(header.get("sender_id"), "sender_id", code="err.sender_id.invalid")
    total = header.get("total_count")
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise EnvelopeError("err.request.bad", "header.total_count must be a whole number, 0 or more.",
                            "header.total_count 须为不小于 0 的整数。", reason="rjct.total_count.invalid")
    receiver = header.get("receiver_id")
    if receiver is not None and receiver != receiver_id:
        raise EnvelopeError("err.receiver_id.invalid", f"header.receiver_id must be {receiver_id!r}.",
                            f"header.receiver_id 须为 {receiver_id!r}。")
    if header.get("is_msg_encrypted") is True:
        raise EnvelopeError("err.encryption.invalid", "Encrypted messages are not accepted by this registry; send "
                            "the message in clear over TLS.", "本登记系统不接收加密报文，请经 TLS 明文发送。")
    uri = header.get("sender_uri")
    if uri is not None and not isinstance(uri, str):
        raise EnvelopeError("err.sender_uri.invalid", "header.sender_uri must be a URI.", "header.sender_uri 须为 URI。")
    return Header(message_id, sent, action, sender_id, total, uri, receiver, header)


def check_total_count(header: Header, message: dict) -> None:
    """``total_count`` is the number of requests the message holds (one for txn-status)."""
    field = REQUEST_LIST[header.action]
    held = 1 if field is None else len(message.get(field) or [])
    if header.total_count != held:
        raise EnvelopeError("err.request.bad", f"header.total_count is {header.total_count} but the message holds "
                            f"{held} request(s).", f"header.total_count 为 {header.total_count}，报文实有 {held} 条请求。",
                            reason="rjct.total_count.invalid")
    if held > MAX_REQUESTS:
        raise EnvelopeError("err.request.bad", f"At most {MAX_REQUESTS} requests per message.",
                            f"每个报文最多 {MAX_REQUESTS} 条请求。", reason="rjct.total_count.limit_exceeded")


def check_not_encrypted(message: Any) -> None:
    if isinstance(message, dict) and ENCRYPTED_FIELDS & message.keys():
        raise EnvelopeError("err.encryption.invalid", "Encrypted messages are not accepted by this registry; send "
                            "the message in clear over TLS.", "本登记系统不接收加密报文，请经 TLS 明文发送。")


def callback_uri(sender_uri: str | None, registered: str, action: str) -> str:
    """Where the answer to ``action`` goes: the sender's URI when it is under the registered one, else the
    registered URI; the spec's callback path is appended unless the URI already ends with it."""
    base = sender_uri or registered
    if sender_uri is not None and not under(sender_uri, registered):
        raise EnvelopeError("err.sender_uri.invalid", "header.sender_uri is not under the callback URI this sender "
                            "was registered with.", "header.sender_uri 不在该发送方登记的回调地址之下。")
    path = CALLBACK_PATH[action]
    for known in CALLBACK_PATH.values():  # a URI naming another callback path is cut back to its base
        if base.rstrip("/").endswith(known):
            base = base.rstrip("/")[: -len(known)]
            break
    return base.rstrip("/") + path


def under(uri: str, registered: str) -> bool:
    """Same scheme, host and port, and the path starts at a segment boundary of the registered one."""
    a, b = urlsplit(uri), urlsplit(registered)
    if a.scheme not in ("http", "https") or (a.scheme, a.hostname, a.port) != (b.scheme, b.hostname, b.port):
        return False
    if a.username or a.password or a.query or a.fragment:
        return False
    base = b.path.rstrip("/")
    return a.path == base or a.path.startswith(base + "/") or not base


# ---------------------------------------------------------------- acknowledgements


def ack(status: str, correlation_id: str, error: EnvelopeError | None = None) -> dict:
    """The spec's ``Response`` body: ACK (callback follows), NACK (valid, nothing follows) or ERR."""
    body: dict[str, Any] = {"ack_status": status, "timestamp": timestamp(), "correlation_id": correlation_id}
    if error is not None:
        body["error"] = {"code": error.code, "message": error.message}
    return {"message": body}


def http_error(code: str, message: str) -> dict:
    """The spec's ``HttpErrorResponse`` body (401, 403, 500)."""
    return {"errors": [{"code": code, "message": message[:999]}]}


def callback_header(action: str, *, registry_id: str, receiver_id: str, status: str, total: int, completed: int,
                    reason: str | None = None, reason_message: str | None = None,
                    message_id: str | None = None) -> dict:
    """``MsgCallbackHeader_V1.0.0`` for an answer the registry sends."""
    header = {"version": VERSION, "message_id": message_id or uuid.uuid4().hex, "message_ts": timestamp(),
              "action": action, "status": status, "total_count": total, "completed_count": completed,
              "sender_id": registry_id, "receiver_id": receiver_id, "is_msg_encrypted": False}
    if reason:
        header["status_reason_code"] = reason
    if reason_message:
        header["status_reason_message"] = reason_message[:999]
    return header


# ---------------------------------------------------------------- signatures


def digest(header: Any, message: Any) -> str:
    return base64.b64encode(hashlib.blake2b(canonical_json({"header": header, "message": message}),
                                            digest_size=64).digest()).decode("ascii")


def signing_string(created: int, expires: int, header: Any, message: Any) -> bytes:
    return f"(created): {created}\n(expires): {expires}\ndigest: BLAKE-512={digest(header, message)}".encode()


def sign(private_key: Ed25519PrivateKey, key_id: str, header: Any, message: Any, *, now: float | None = None) -> str:
    created = int(now if now is not None else time.time())
    expires = created + SIGNATURE_TTL_S
    signature = base64.b64encode(private_key.sign(signing_string(created, expires, header, message))).decode()
    return (f'Signature: namespace="dci", keyId="{key_id}", algorithm="{ALGORITHM}", created="{created}", '
            f'expires="{expires}", headers="(created) (expires) digest", signature="{signature}"')


_PARAM = re.compile(r'([A-Za-z]+)\s*=\s*"([^"]*)"')


def parse_signature(text: str) -> dict[str, str]:
    body = text.strip()
    if body.lower().startswith("signature:"):
        body = body[len("signature:"):]
    return {name: value for name, value in _PARAM.findall(body)}


def verify(signature: Any, public_key: Ed25519PublicKey, sender_id: str, header: Any, message: Any, *,
           now: float | None = None) -> None:
    """EnvelopeError unless ``signature`` is a valid, unexpired signature of this sender over header + message."""
    if not signature:
        raise EnvelopeError("err.signature.missing", "This sender signs its messages: the signature is missing.",
                            "该发送方须对报文签名：缺少 signature。", http_status=401)
    params = parse_signature(signature) if isinstance(signature, str) else {}
    key_id = params.get("keyId") or params.get("kidId") or ""
    bad = None
    if params.get("algorithm", ALGORITHM).lower() != ALGORITHM or not key_id.startswith(sender_id + "|"):
        bad = "keyId must be <sender_id>|<key id>|ed25519 and algorithm ed25519"
    else:
        try:
            created, expires = int(params["created"]), int(params["expires"])
            raw = base64.b64decode(params["signature"], validate=True)
        except (KeyError, ValueError):
            bad = "created, expires and signature must be present and well-formed"
        else:
            current = now if now is not None else time.time()
            if not created - 300 <= current <= expires:
                bad = "the signature is not valid at this time (created/expires)"
            else:
                try:
                    public_key.verify(raw, signing_string(created, expires, header, message))
                except InvalidSignature:
                    bad = "the signature does not match the header and message"
    if bad:
        raise EnvelopeError("err.signature.invalid", f"Invalid signature: {bad}.", f"签名无效：{bad}。",
                            http_status=401)
