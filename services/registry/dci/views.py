"""The DCI Social Registry API's paths, exactly as the specification names them (docs/dci.md).

Asynchronous: ``POST /registry/search``, ``/registry/subscribe``, ``/registry/unsubscribe``,
``/registry/txn/status`` answer ``ACK`` (a callback follows), ``NACK`` (a resend whose callback went out
already: nothing more follows) or ``ERR`` at once; the worker computes the answer and calls the sender back.
Synchronous: ``POST /registry/sync/search`` and ``/registry/sync/txn/status`` answer the signed
``{signature, header, message}`` envelope directly. Errors keep the spec's shapes: ``ERR`` acknowledgements
(HTTP 400) for a message that cannot be taken, ``HttpErrorResponse`` (``{"errors": [{code, message}]}``) for
401 and 403. Administrators register senders and look after deliveries under ``/v1/admin/dci/...``.
"""
from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as FastPath
from fastapi.responses import JSONResponse
from sqlalchemy import func, select, update

from services.registry.dci import senders, service
from services.registry.dci.envelope import (EnvelopeError, ack, callback_header, callback_uri, check_header,
                                            check_not_encrypted, check_total_count, http_error, new_correlation_id,
                                            now_utc, verify)
from services.registry.dci.schemas import (ACK_RESPONSES, SYNC_RESPONSES, request_body)
from services.registry.dci.senders import SenderChange, SenderCreate, parse_public_key
from services.registry.tables import dci_deliveries, dci_subscriptions
from shared.auth import Principal, require_scopes
from shared.events import as_aware
from shared.problems import PROBLEM_RESPONSES, Problem

router = APIRouter()
Admin = Depends(require_scopes("admin"))
DCI_SCOPE = "dci"
DCI_TAG = ["DCI Social Registry API v1.0.0"]


async def _caller(request: Request) -> Principal:
    """The bearer token's principal, with scope ``dci`` (or admin); EnvelopeError in the spec's 401/403 shape."""
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise EnvelopeError("err.request.unauthorized", "Send Authorization: Bearer <token> (POST /oauth2/client/token).",
                            "请携带 Authorization: Bearer <令牌>（POST /oauth2/client/token 获取）。", http_status=401)
    try:
        principal = await request.app.state.token_verifier.averify(token.strip())
    except Problem as problem:
        if problem.status == 503:
            raise EnvelopeError("err.service.unavailable", "The token's signing keys cannot be fetched right now; "
                                "retry.", "暂时无法取得令牌签名公钥，请重试。", http_status=503) from problem
        raise EnvelopeError("err.request.unauthorized", f"The token is not accepted: {problem.detail}",
                            "令牌无效或已过期。", http_status=401) from problem
    if not principal.has(DCI_SCOPE):
        raise EnvelopeError("err.request.forbidden", "This call needs scope dci.", "此调用需要 dci 权限范围。",
                            http_status=403)
    return principal


def _error_response(error: EnvelopeError, *, sync: bool, registry_id: str, sender_id: str | None) -> JSONResponse:
    if error.http_status in (401, 403, 503):
        headers = {"WWW-Authenticate": "Bearer"} if error.http_status == 401 else None
        return JSONResponse(http_error(error.code, error.message), status_code=error.http_status, headers=headers)
    if sync:  # the synchronous answer's own shape: a header saying rjct, and why
        header = callback_header("on-search", registry_id=registry_id, receiver_id=sender_id or "", status="rjct",
                                 total=0, completed=0, reason=error.reason, reason_message=f"{error.code}: {error.message}")
        return JSONResponse({"header": header}, status_code=400)
    return JSONResponse(ack("ERR", new_correlation_id(), error), status_code=400)


async def _envelope(request: Request) -> tuple[Any, Any, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise EnvelopeError("err.request.bad", "The body is not JSON.", "请求体不是 JSON。") from None
    if not isinstance(body, dict) or "header" not in body or "message" not in body:
        raise EnvelopeError("err.request.bad", "The body must be an object with header and message.",
                            "请求体须为含 header 与 message 的对象。")
    if _holds_nul(body):  # no text with U+0000 is stored or looked up (shared.db.refuse_nul_text): refused now,
        # not when the worker answers it later (the DCI fuzz found an unsubscribe code holding one)
        raise EnvelopeError("err.request.bad", "A text value holds a NUL character (U+0000).",
                            "文本中含有 NUL 字符（U+0000）。")
    return body.get("signature"), body["header"], body["message"]


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


async def _receive(request: Request, action: str, *, sync: bool) -> JSONResponse:
    settings = request.app.state.settings
    sender_id = None
    try:
        if request.app.state.dci_signer is None:
            raise EnvelopeError("err.service.unavailable", "The DCI API is off: JZ_REGISTRY_DCI_SIGNING_KEY_FILE is not "
                                "set.", "DCI 接口未启用：未设置 JZ_REGISTRY_DCI_SIGNING_KEY_FILE。", http_status=503)
        principal = await _caller(request)
        signature, raw_header, message = await _envelope(request)
        header = check_header(raw_header, action=action, receiver_id=settings.dci_receiver_id,
                              skew_s=settings.dci_message_ts_skew_s)
        sender_id = header.sender_id
        async with request.app.state.sessionmaker() as session:
            sender = await senders.sender_for(session, header.sender_id, principal)
            if sender.public_key:
                verify(signature, parse_public_key(sender.public_key), header.sender_id, raw_header, message)
            elif signature:
                raise EnvelopeError("err.signature.invalid", "A signature came from a sender with no public key on "
                                    "record; register its key first.", "该发送方未登记公钥，无法验签；请先登记公钥。",
                                    http_status=401)
            check_not_encrypted(message)
            service.check_message(action, message)
            check_total_count(header, message)
            url = None if sync else callback_uri(header.sender_uri, sender.callback_uri, action)
            taken = await service.accept(session, header, message, principal, mode="sync" if sync else "async",
                                         callback_url=url)
            if not sync:
                worker = getattr(request.app.state, "dci_worker", None)
                if worker is not None:
                    worker.wake.set()
                return JSONResponse(ack("NACK" if taken.delivered else "ACK", taken.correlation_id))
            if taken.response is not None:
                answer_header, answer_message = taken.response["header"], taken.response["message"]
            else:
                txn = await service.transaction(session, taken.correlation_id)
                answer_header, answer_message = await service.answer(
                    session, txn, registry_id=settings.dci_receiver_id, max_page_size=settings.dci_max_page_size)
                await session.commit()
    except EnvelopeError as error:
        return _error_response(error, sync=sync, registry_id=settings.dci_receiver_id, sender_id=sender_id)
    signer = request.app.state.dci_signer
    return JSONResponse({"signature": signer.sign(answer_header, answer_message), "header": answer_header,
                         "message": answer_message})


@router.post("/registry/search", tags=DCI_TAG, openapi_extra=request_body("search"), responses=ACK_RESPONSES,
             summary="Asynchronous search: ACK now, the records at the sender's on-search")
async def search(request: Request) -> JSONResponse:
    return await _receive(request, "search", sync=False)


@router.post("/registry/subscribe", tags=DCI_TAG, openapi_extra=request_body("subscribe"), responses=ACK_RESPONSES,
             summary="Subscribe to household events: ACK now, the subscription codes at on-subscribe")
async def subscribe(request: Request) -> JSONResponse:
    return await _receive(request, "subscribe", sync=False)


@router.post("/registry/unsubscribe", tags=DCI_TAG, openapi_extra=request_body("unsubscribe"),
             responses=ACK_RESPONSES, summary="Unsubscribe: ACK now, the outcome at on-unsubscribe")
async def unsubscribe(request: Request) -> JSONResponse:
    return await _receive(request, "unsubscribe", sync=False)


@router.post("/registry/txn/status", tags=DCI_TAG, openapi_extra=request_body("txn-status"), responses=ACK_RESPONSES,
             summary="Asynchronous transaction status: ACK now, the status at txn/on-status")
async def txn_status(request: Request) -> JSONResponse:
    return await _receive(request, "txn-status", sync=False)


@router.post("/registry/sync/search", tags=DCI_TAG, openapi_extra=request_body("search"),
             responses=SYNC_RESPONSES["search"], summary="Synchronous search: the records in the answer")
async def sync_search(request: Request) -> JSONResponse:
    return await _receive(request, "search", sync=True)


@router.post("/registry/sync/txn/status", tags=DCI_TAG, openapi_extra=request_body("txn-status"),
             responses=SYNC_RESPONSES["txn-status"], summary="Synchronous transaction status")
async def sync_txn_status(request: Request) -> JSONResponse:
    return await _receive(request, "txn-status", sync=True)


@router.get("/registry/.well-known/dci-keys", tags=DCI_TAG,
            summary="The registry's public key that signs its DCI answers, callbacks and notifications (JWKS)")
async def dci_keys(request: Request) -> dict:
    signer = request.app.state.dci_signer
    return signer.jwks() if signer is not None else {"keys": []}


# ---------------------------------------------------------------- administration


@router.post("/v1/admin/dci/senders", status_code=201, responses=PROBLEM_RESPONSES, summary="Register a DCI sender")
async def create_sender(request: Request, body: SenderCreate, principal: Principal = Admin) -> dict:
    async with request.app.state.sessionmaker() as session:
        return await senders.create_sender(session, body, principal)


@router.get("/v1/admin/dci/senders", responses=PROBLEM_RESPONSES, summary="The registered DCI senders")
async def list_senders(request: Request, principal: Principal = Admin) -> dict:
    async with request.app.state.sessionmaker() as session:
        return {"items": await senders.list_senders(session)}


@router.get("/v1/admin/dci/senders/{sender_id}", responses=PROBLEM_RESPONSES, summary="One DCI sender")
async def get_sender(request: Request, sender_id: str, principal: Principal = Admin) -> dict:
    async with request.app.state.sessionmaker() as session:
        return await senders.get_sender(session, sender_id)


@router.patch("/v1/admin/dci/senders/{sender_id}", responses=PROBLEM_RESPONSES, summary="Change or disable a DCI sender")
async def change_sender(request: Request, sender_id: str, body: SenderChange, principal: Principal = Admin) -> dict:
    async with request.app.state.sessionmaker() as session:
        return await senders.change_sender(session, sender_id, body)


def _delivery(row) -> dict:
    return {"id": row.id, "kind": row.kind, "sender_id": row.sender_id, "correlation_id": row.correlation_id,
            "subscription_code": row.subscription_code, "url": row.url, "action": row.action, "status": row.status,
            "attempts": row.attempts, "next_attempt_at": as_aware(row.next_attempt_at), "last_error": row.last_error,
            "created_at": as_aware(row.created_at), "delivered_at": as_aware(row.delivered_at),
            "redriven_at": as_aware(row.redriven_at), "redriven_by": row.redriven_by}


@router.get("/v1/admin/dci/deliveries", responses=PROBLEM_RESPONSES, summary="Callbacks and notifications: pending, delivered or dead")
async def list_deliveries(request: Request, status: str | None = Query(None, pattern="^(pending|delivered|dead)$"),
                          sender_id: str | None = None, limit: int = Query(100, ge=1, le=1000),
                          principal: Principal = Admin) -> dict:
    query = select(dci_deliveries).order_by(dci_deliveries.c.id.desc()).limit(limit)
    counts = select(dci_deliveries.c.status, func.count()).group_by(dci_deliveries.c.status)
    if status:
        query = query.where(dci_deliveries.c.status == status)
    if sender_id:
        query = query.where(dci_deliveries.c.sender_id == sender_id)
        counts = counts.where(dci_deliveries.c.sender_id == sender_id)
    async with request.app.state.sessionmaker() as session:
        rows = (await session.execute(query)).all()
        totals = dict((await session.execute(counts)).all())
    return {"items": [_delivery(row) for row in rows],
            "counts": {name: totals.get(name, 0) for name in ("pending", "delivered", "dead")}}


@router.post("/v1/admin/dci/deliveries/{delivery_id}/redrive", responses=PROBLEM_RESPONSES, summary="Send a dead delivery again")
async def redrive(request: Request, delivery_id: int = FastPath(ge=1, le=2**63 - 1),
                  principal: Principal = Admin) -> dict:
    async with request.app.state.sessionmaker() as session:
        row = (await session.execute(select(dci_deliveries).where(dci_deliveries.c.id == delivery_id))).first()
        if row is None:
            raise Problem(404, "No such delivery", f"No DCI delivery {delivery_id}.",
                          type_="https://jingzhun.dev/problems/not-found")
        status = row.status
        if status != "dead":
            raise Problem(409, "Delivery is not dead", f"Delivery {delivery_id} is {status}; only a dead delivery "
                          "is redriven.", type_="https://jingzhun.dev/problems/conflict")
        now = now_utc()
        await session.execute(update(dci_deliveries).where(dci_deliveries.c.id == delivery_id).values(
            status="pending", attempts=0, next_attempt_at=now, redriven_at=now, redriven_by=principal.subject))
        await session.commit()
        row = (await session.execute(select(dci_deliveries).where(dci_deliveries.c.id == delivery_id))).first()
    worker = getattr(request.app.state, "dci_worker", None)
    if worker is not None:
        worker.wake.set()
    return _delivery(row)


@router.get("/v1/admin/dci/subscriptions", responses=PROBLEM_RESPONSES, summary="DCI subscriptions")
async def list_subscriptions(request: Request, sender_id: str | None = None,
                             status: str | None = Query(None, pattern="^(subscribe|unsubscribe)$"),
                             limit: int = Query(100, ge=1, le=1000), principal: Principal = Admin) -> dict:
    query = select(dci_subscriptions).order_by(dci_subscriptions.c.created_at.desc()).limit(limit)
    if sender_id:
        query = query.where(dci_subscriptions.c.sender_id == sender_id)
    if status:
        query = query.where(dci_subscriptions.c.status == status)
    async with request.app.state.sessionmaker() as session:
        rows = (await session.execute(query)).all()
    return {"items": [{"code": r.code, "sender_id": r.sender_id, "reg_event_type": r.reg_event_type,
                       "filter_type": r.filter_type, "filter": r.filter, "response_entity": r.response_entity,
                       "notify_uri": r.notify_uri, "status": r.status, "created_at": as_aware(r.created_at),
                       "unsubscribed_at": as_aware(r.unsubscribed_at), "caller_area": r.caller.get("area")}
                      for r in rows]}
